"""lesa: grow a pretrained decoder LLM deeper with LESA (learned layers) or the heuristics it is
compared with (LLaMA Pro identity copies, SOLAR stacking), as declarative plans applied by one function.

    from lesa import load_model, build_plan, apply_plan, save_grown
    model, tok = load_model("smollm2-135m")
    grown = apply_plan(model, build_plan("lesa", model.config.num_hidden_layers))
    save_grown(grown, "runs/lesa-45", tok)

Subpackages by job, each importing only those listed before it (tests/test_layers.py):
core, data, grow, eval, train, claims, study, plots, bench, book.
"""
from pathlib import Path

# the checkout this package sits in (results/, configs/, notebooks/, .cache/); set before the imports below
PROJECT_ROOT = Path(__file__).resolve().parents[1]

from .core.arch import ARCHS, UnsupportedArchitecture, check_model, spec_for
from .grow.plans import METHODS, build_plan, llama_pro_plan, lesa_plan, solar_plan
from .grow.spec import Plan, PlanError, Slot, load_plan
from .grow.predictor import PredictorConfig, train_predictor
from .grow.svd import Factors, factorize

__version__ = "0.1.0"

# the subpackages, lowest first: each may import only those before it (and lesa.PROJECT_ROOT)
LAYERS = ("core", "data", "grow", "eval", "train", "claims", "study", "plots", "bench", "book")


def __getattr__(name):  # heavy modules (transformers) load lazily
    if name in ("apply_plan", "save_grown"):
        from .grow import expand
        return getattr(expand, name)
    if name == "layer_kind":
        from .grow.kinds import layer_kind
        return layer_kind
    if name in ("load_model", "load_config", "resolve", "DEFAULT_MODEL"):
        from .core import models
        return getattr(models, name)
    raise AttributeError(f"module 'lesa' has no attribute {name!r}")
