"""The profile's continual pre-training comparison: grow the model by each method, train only the
new layers on the same tokens in the same order, then evaluate the trained models.

    python -m lesa.cpt --profile cpu        # results/cpu/cpt/<run>/ and results/cpu/downstream/

Runs are resumable and reused (lesa.train); expanded models are rebuilt on demand, one at a time.
"""
from __future__ import annotations

import argparse
import sys

from .store import PROJECT_ROOT, cache_dir, read_json

BASE = "base"          # the unexpanded model, continually pre-trained on the same tokens (all layers)


def run_names(cpt: dict) -> dict[str, dict]:
    """run name -> {method, steps, seed, train_all} for methods x budgets x seeds (+ unfrozen ablation)."""
    steps = cpt["train"]["steps"]
    budgets = cpt.get("budgets") or [steps]
    seeds = cpt.get("seeds") or [cpt["train"].get("seed", 0)]
    runs: dict[str, dict] = {}
    for method in cpt["methods"]:
        for b in budgets:
            for s in seeds if method != BASE else seeds[:1]:
                name = method + (f"-{b}" if len(budgets) > 1 else "") + (f"-seed{s}" if len(seeds) > 1 else "")
                runs[name] = {"method": method, "steps": b, "seed": s, "train_all": method == BASE}
    for method in cpt.get("unfrozen", []):
        runs[f"{method}-unfrozen"] = {"method": method, "steps": budgets[-1], "seed": seeds[0], "train_all": True}
    return runs


def _grower(prof: dict, method: str):
    def build():
        from .expand import apply_plan
        from .plans import build_plan
        from .predictor import PredictorConfig
        from .profiles import load_profile_model

        model, _, key = load_profile_model(prof, tokenizer=False)
        if method == BASE:
            return model
        L = model.config.num_hidden_layers
        plan = build_plan(method, L, prof["model"].get("target_layers"))
        pred = PredictorConfig(epochs=prof["predictor"]["epochs"])
        return apply_plan(model, plan, pred, copy_weights=False, cache_key=key)
    return build


def run_profile_cpt(profile: str = "auto", evaluate: bool = True, force: bool = False) -> dict:
    from .data import latest_corpus
    from .profiles import load_profile
    from .train import TrainConfig, run_cpt_comparison

    prof = load_profile(profile)
    cpt = prof.get("cpt") or {}
    if "train" not in cpt or "methods" not in cpt:
        raise ValueError(f"profile {prof['name']!r} has no cpt.train / cpt.methods section")
    corpus = latest_corpus(fast=True if prof["name"] == "smoke" else None)
    base = TrainConfig.from_dict({**cpt["train"], "device": prof["device"]})
    runs = run_names(cpt)
    summaries = run_cpt_comparison(
        {name: _grower(prof, r["method"]) for name, r in runs.items()}, corpus / "train", corpus / "heldout",
        prof["name"], base, force=force,
        overrides={name: {"steps": r["steps"], "seed": r["seed"], "train_all": r["train_all"]}
                   for name, r in runs.items()})
    if evaluate and cpt.get("eval"):
        evaluate_runs(prof, runs)
    return summaries


def evaluate_runs(prof: dict, runs: dict[str, dict]) -> None:
    """Load each run's trained layers into a freshly grown model and run the profile's eval suite."""
    from .evaluate import evaluate_suite
    from .profiles import load_profile_model
    from .train import load_trained_weights

    ev = prof["cpt"]["eval"]
    out = PROJECT_ROOT / "results" / prof["name"] / "downstream"
    _, tok, _ = load_profile_model(prof)
    for name, r in runs.items():
        model = _grower(prof, r["method"])()
        ckpt = cache_dir("cpt", prof["name"], name)
        step = load_trained_weights(model, ckpt)
        weights_id = {"run_key": read_json(ckpt / "latest.json").get("run_key"), "step": step}
        print(f"[cpt] evaluating {name} at step {step}")
        evaluate_suite(model.eval(), tok, label=name, out_dir=out, tasks=ev["tasks"], ppl_sets=ev["ppl_sets"],
                       limit=ev.get("limits"), batch_size=ev.get("batch_size", 8),
                       ppl_max_length=ev.get("ppl_max_length"), skip_done=True, weights_id=weights_id,
                       precision=ev.get("precision", "fp32"))
        del model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.cpt", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--no-eval", action="store_true", help="train only")
    ap.add_argument("--force", action="store_true", help="retrain even when a finished run exists")
    args = ap.parse_args(argv)
    run_profile_cpt(args.profile, evaluate=not args.no_eval, force=args.force)
    return 0


if __name__ == "__main__":
    from .store import run_main

    sys.exit(run_main(main))
