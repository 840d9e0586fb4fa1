"""A case where LESA must work: a tiny Llama whose layers follow a depth pattern by construction.

Why this model. The book finds that on SmolLM2 the predictor does not beat simple baselines. That is
only evidence about SmolLM2 if the same code, with the same released recipe, does learn a pattern
where one exists. Here one exists by construction, and so does the ground truth for grown layers.

The pattern. For each weight type, layer t (t = 0..T-1) is

    W_t = A P(t) + noise,    P(t) = Q blockdiag(rot(w_1 t), ..., rot(w_{d/2} t)) Q^T

with A (d_out x d) and Q (a random rotation of the input space) fixed per type, and angular speeds
w_b drawn in [w_min, w_max] radians per layer. Choices, and why:

* The depth dependence is smooth but NOT linear. For W_t = A + (t/L) B the neighbour average is
  exactly the middle layer, so nothing can beat it and the case would test nothing. A rotation keeps
  every layer's norm while its direction turns: the average of two neighbours is shorter than the
  layer between them (by cos(w) per plane), which is the "parameter degradation" LESA's norm loss is
  meant to prevent. The truth is still a fixed function of the two neighbours, at every depth.
* The variation acts on the input side (W = A P(t)). LESA concatenates W = [W_0 | ... | W_{T-1}] and
  splits V^T per layer, so V_t = M P(t) for a fixed M: every coefficient row turns by the same P(t),
  and one row-wise MLP (the released G_W, shared over all singular directions) can map the rows of
  V_{t-1}, V_{t+1} to those of V_t. Structure on the output side (P(t) A) would mix rows and no
  row-wise predictor could learn it.
* Square weights, d = hidden = intermediate, and as many key/value heads as query heads. W_t = A P(t)
  has rank <= d_in, so a tall weight (d_out > d_in) would get d_out - d_in coefficient rows of pure
  noise, which the released recipe trains on with equal weight. With square weights every row of V
  carries the pattern. Norm gains stay at 1 (RMSNorm's init), so the norm source (layer 0 vs
  neighbours) cannot matter here.
* Small iid noise (``noise`` x the weights' scale) makes the truth not exactly predictable.

Ground truth for growth. A model with T layers is generated; the layers listed in ``removed`` are
deleted to give the source model, and every method grows it back to T layers. LESA and the neighbour
average fill exactly the removed positions (gaps k, k+1 of the source model), so their new layers are
compared with the removed truth; SOLAR stacks layers, and its grown model is compared slot by slot.
This keeps the released recipe's geometry: G is trained on source triples (i-1, i, i+1) and predicts a
layer one truth step from each of two neighbours two steps apart, as the training triples do (apart
from the triples that straddle a removed layer). The alternative, generating 2L-1 layers and keeping
the even ones (``half_step_config()``), asks G to predict at half its training distance: the learned
map turns by one source step, the truth by half a step. It measures the released recipe's train/test
distance mismatch (paper-digest section 6, item 13), not whether G learns: measured with seed 0, LOO
R^2 stays >= 0.98 but the 15 regrown layers have relative error 0.65 (LESA) vs 0.56 (average).

``run_synthetic()`` returns a dict of metrics (R^2 per type, weight error per method, output error per
method) and the named pass/fail ``checks``; tests/test_synthetic.py asserts them, and that the same
pipeline on a shuffled-layer version of the model (``SyntheticConfig(shuffle=True)``) fails them.
Cost: about 3 s of one CPU core.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from ..core.arch import PROJECTIONS, get_layers
from ..grow.expand import apply_plan
from ..grow.plans import build_plan
from ..grow.predictor import PredictorConfig
from .predictor import leave_one_layer_out, weight_metrics


@dataclass
class SyntheticConfig:
    hidden: int = 16               # = intermediate size: every weight type is square (see module doc)
    heads: int = 2                 # query heads = key/value heads (k, v square too)
    layers: int = 32               # T, the ground-truth depth
    removed: tuple[int, ...] = (20, 24, 28)   # truth layers deleted to make the source model (top, like LESA's gaps)
    vocab: int = 64
    w_min: float = 0.5             # angular speed per layer (radians) of each rotation plane, drawn uniformly
    w_max: float = 1.5
    noise: float = 0.02            # iid noise, relative to the weights' entry scale
    scale: float = 1.0             # entries of A ~ N(0, scale^2 / d)
    shuffle: bool = False          # control: permute the truth layers (one permutation for all types)
    seed: int = 0
    loo_layers: tuple[int, ...] = (10,)   # held-out layers for leave-one-layer-out on the truth model
    tokens: int = 64               # evaluation batch: 4 sequences of this many random tokens

    def __post_init__(self):
        if self.hidden % (2 * self.heads):
            raise ValueError(f"hidden {self.hidden} must be a multiple of 2 x heads ({2 * self.heads})")
        bad = [i for i in self.removed if not 0 < i < self.layers - 1]
        if bad or any(abs(a - b) < 2 for a in self.removed for b in self.removed if a != b):
            raise ValueError(f"removed layers {self.removed} must be interior and not adjacent")


def half_step_config(**kw) -> SyntheticConfig:
    """2L-1 = 31 truth layers, the odd ones removed: the source keeps the even layers and every gap is
    regrown at half the predictor's training distance (see the module docstring)."""
    return SyntheticConfig(**{"layers": 31, "removed": tuple(range(1, 30, 2)), **kw})


def _rotation(d: int, speeds: torch.Tensor, t: float, Q: torch.Tensor) -> torch.Tensor:
    """Q blockdiag(rot(speeds * t)) Q^T, a (d, d) rotation (float64)."""
    c, s = torch.cos(speeds * t), torch.sin(speeds * t)
    R = torch.zeros(d, d, dtype=torch.float64)
    R[0::2, 0::2] = torch.diag(c)
    R[0::2, 1::2] = torch.diag(-s)
    R[1::2, 0::2] = torch.diag(s)
    R[1::2, 1::2] = torch.diag(c)
    return Q @ R @ Q.T


def truth_weights(cfg: SyntheticConfig) -> dict[str, torch.Tensor]:
    """{short: (T, d, d) float32} following the pattern above (layer order permuted if cfg.shuffle)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    d, T = cfg.hidden, cfg.layers
    out = {}
    perm = torch.randperm(T, generator=gen) if cfg.shuffle else torch.arange(T)
    for short in PROJECTIONS:
        A = torch.randn(d, d, generator=gen, dtype=torch.float64) * cfg.scale / math.sqrt(d)
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
        speeds = cfg.w_min + (cfg.w_max - cfg.w_min) * torch.rand(d // 2, generator=gen, dtype=torch.float64)
        noise = torch.randn(T, d, d, generator=gen, dtype=torch.float64) * cfg.noise * cfg.scale / math.sqrt(d)
        Ws = torch.stack([A @ _rotation(d, speeds, float(t), Q) for t in range(T)]) + noise
        out[short] = Ws[perm].float()
    return out


def _llama(cfg: SyntheticConfig, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    conf = LlamaConfig(hidden_size=cfg.hidden, intermediate_size=cfg.hidden, num_hidden_layers=layers,
                       num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, vocab_size=cfg.vocab,
                       max_position_embeddings=max(128, cfg.tokens), tie_word_embeddings=True)
    torch.manual_seed(cfg.seed)                                   # embeddings; norms are ones
    return LlamaForCausalLM(conf).eval()


def build_models(cfg: SyntheticConfig, W: dict[str, torch.Tensor] | None = None):
    """(truth model with T layers, source model with the ``removed`` layers deleted)."""
    W = truth_weights(cfg) if W is None else W
    truth = _llama(cfg, cfg.layers)
    with torch.no_grad():
        truth.model.embed_tokens.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(cfg.seed + 1))
        for t, layer in enumerate(get_layers(truth)):
            for short, path in PROJECTIONS.items():
                layer.get_submodule(path).weight.copy_(W[short][t])
    keep = [t for t in range(cfg.layers) if t not in cfg.removed]
    source = _llama(cfg, len(keep))
    sd = {k: v for k, v in truth.state_dict().items() if not k.startswith("model.layers.")}
    for i, t in enumerate(keep):
        sd.update({f"model.layers.{i}.{k}": v for k, v in get_layers(truth)[t].state_dict().items()})
    source.load_state_dict(sd)
    return truth, source


def source_gaps(cfg: SyntheticConfig) -> list[int]:
    """Gap k of the source model (new layer between source k and k+1) for each removed truth layer."""
    return sorted(t - 1 - sum(r < t for r in cfg.removed) for t in cfg.removed)


@torch.no_grad()
def _outputs(model, ids) -> torch.Tensor:
    return model(input_ids=ids).logits.double()


def _output_error(logits: torch.Tensor, ref: torch.Tensor) -> dict:
    kl = torch.nn.functional.kl_div(logits.log_softmax(-1), ref.log_softmax(-1), log_target=True,
                                    reduction="batchmean")
    return {"logits_rel_error": float((logits - ref).norm() / ref.norm()),
            "kl_from_truth": float(kl) / ref.shape[1]}


def _weight_error(grown, truth, slots: list[int]) -> dict:
    """Mean relative error ||W - W_true|| / ||W_true|| and R^2 over the given slots and all 7 types."""
    g, t = get_layers(grown), get_layers(truth)
    rows = [weight_metrics(g[i].get_submodule(p).weight.detach(), t[i].get_submodule(p).weight.detach())
            for i in slots for p in PROJECTIONS.values()]
    return {"rel_error": sum(r["rel_error"] for r in rows) / len(rows),
            "r2": sum(r["r2"] for r in rows) / len(rows),
            "norm_ratio": sum(r["norm_ratio"] for r in rows) / len(rows)}


def run_synthetic(cfg: SyntheticConfig | None = None, predictor=None,
                  methods: tuple[str, ...] = ("lesa", "average", "solar", "llama_pro")) -> dict:
    """Leave-one-layer-out R^2 per weight type on the truth model, then grow the source model back to
    T layers with each method and compare with the truth: weights of the new slots and of all slots,
    logits (relative error, KL per token) on random tokens. ``predictor``: a PredictorConfig (default:
    the released recipe's settings, PredictorConfig())."""
    cfg = cfg or SyntheticConfig()
    pred = predictor or PredictorConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny matrices: a second thread only adds contention (10x slower
    try:                              # when another job shares the cores)
        return _run(cfg, pred, methods)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: SyntheticConfig, pred, methods) -> dict:
    t0 = time.perf_counter()
    W = truth_weights(cfg)
    truth, source = build_models(cfg, W)
    loo = {}
    for short in PROJECTIONS:
        rows = [leave_one_layer_out(W[short], pred, i) for i in cfg.loo_layers]
        loo[short] = {"r2": min(r["metrics"]["predictor"]["r2"] for r in rows),
                      "r2_neighbour_average": min(r["metrics"]["neighbour_average"]["r2"] for r in rows),
                      "layers": list(cfg.loo_layers)}
    ids = torch.randint(0, cfg.vocab, (4, cfg.tokens), generator=torch.Generator().manual_seed(cfg.seed + 2))
    ref = _outputs(truth, ids)
    L, T = cfg.layers - len(cfg.removed), cfg.layers
    weights, outputs = {}, {"source (not grown)": _output_error(_outputs(source, ids), ref)}
    for method in methods:
        kw = {"gaps": source_gaps(cfg)} if method in ("lesa", "average") else {}
        plan = build_plan(method, L, T, **kw)
        grown = apply_plan(source, plan, pred, progress=False, workers=1)
        weights[method] = {"new_layers": _weight_error(grown, truth, plan.new_layers),
                           "all_layers": _weight_error(grown, truth, list(range(T))),
                           "new_slots": plan.new_layers}
        outputs[method] = _output_error(_outputs(grown, ids), ref)
    out = {"config": asdict(cfg), "predictor": pred.to_dict(), "loo": loo,
           "r2_min": min(v["r2"] for v in loo.values()), "weights": weights, "outputs": outputs,
           "seconds": round(time.perf_counter() - t0, 1)}
    out["checks"] = checks(out)
    return out


def checks(result: dict, r2: float = 0.9, recovery: float = 0.5) -> dict[str, bool]:
    """What "LESA works here" means, one named check each (all True on the synthetic model; the
    shuffled-layer control fails the first three). Beating the baselines alone would not do: on
    structureless layers LESA's predictions shrink towards zero, which still hurts the outputs less
    than a full-norm average of two unrelated layers or SOLAR's misplaced copies."""
    w, o = result["weights"], result["outputs"]
    out = {
        "loo_r2": all(v["r2"] >= r2 for v in result["loo"].values()),             # every weight type
        "new_layers_r2": w["lesa"]["new_layers"]["r2"] >= r2,
        # the grown model is much closer to the truth than the source model missing those layers
        "recovers_outputs": o["lesa"]["logits_rel_error"] <= recovery * o["source (not grown)"]["logits_rel_error"],
    }
    for base in ("average", "solar"):
        if base in w:
            out[f"weights_beat_{base}"] = w["lesa"]["new_layers"]["rel_error"] < w[base]["new_layers"]["rel_error"]
            out[f"outputs_beat_{base}"] = o["lesa"]["logits_rel_error"] < o[base]["logits_rel_error"]
    return out
