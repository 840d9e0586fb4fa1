"""Command line: thin wrappers over the package.

    lesa model smollm2-135m                                    # convert/cache the default model
    lesa plan --model smollm2-135m --method lesa --layers 45   # dry run: layer map, no weights
    lesa plan --method lesa --layers 48 --source-layers 32 --yaml > my-plan.yaml   # a plan file to edit
    lesa expand --model smollm2-135m --method lesa --layers 45 --out runs/lesa-45
    lesa expand --model smollm2-135m --method lesa_fp --alpha 0.1 --out runs/lesa-fp-45
    lesa expand --model /path/to/llama3-8b --plan configs/plans/lesa-32-48.yaml --out runs/lesa-48
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from ..core.arch import spec_for
from ..core.models import DEFAULT_MODEL, load_config, load_model, resolve, weights_key
from .expand import apply_plan, check_predictor_plan, effective_predictor, save_grown
from .plans import METHODS, PLACEMENTS, build_plan, with_predictor
from .predictor import PredictorConfig
from .spec import PlanError, check_plan_for, load_plan

# command-line option -> plan builder keyword (taken only by the methods whose builder has it)
BUILDER_OPTIONS = {"gaps": "--gaps", "after": "--after", "norm_source": "--norms", "alpha": "--alpha",
                   "rank": "--rank", "t": "--t", "spectrum": "--spectrum", "directions": "--directions"}
# command-line option -> PredictorConfig field
PREDICTOR_OPTIONS = {"lam": "--lam", "epochs": "--epochs", "seed": "--seed", "device": "--device",
                     "svd_method": "--svd", "ridge_lam": "--ridge-lam", "recipe": "--recipe"}


def _methods_help() -> str:
    return "methods:\n" + "\n".join(f"  {name:16s} {doc}" for name, (_, doc) in METHODS.items())


def _add_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="short name, local HF folder, or hub id (default smollm2-135m)")
    p.add_argument("--plan", default=None, metavar="FILE",
                   help="a plan file (YAML/JSON, see configs/plans/) instead of --method and its options")
    p.add_argument("--method", default=None, help="growth method (default lesa); see the list below")
    p.add_argument("--layers", type=int, default=None, help="target depth (default 1.5x the source)")
    p.add_argument("--gaps", type=_gap_arg, nargs="*", default=None,
                   help="gap methods: gaps k (new layer between k and k+1), or one placement: top (default, "
                        "the released code's) or spread (evenly through the whole stack, like LLaMA Pro's)")
    p.add_argument("--after", type=int, nargs="*", default=None,
                   help="llama_pro: original layers after which an identity copy is inserted")
    p.add_argument("--norms", choices=["layer0", "neighbours"], default=None,
                   help="norms/biases of new layers between two layers (default: layer0 for lesa, as released)")
    p.add_argument("--alpha", type=float, default=None,
                   help="lesa_fp, lesa_lowrank, lesa_ridge, svd_interp, copy_scaled: scale of the new layers' "
                        "o_proj/down_proj (0: the grown model starts exactly at the source model)")
    p.add_argument("--rank", type=int, default=None,
                   help="lesa_lowrank, svd_interp: keep only the top-k singular directions")
    p.add_argument("--t", type=float, default=None, help="svd_interp: position between the neighbours (0.5)")
    p.add_argument("--spectrum", choices=["neighbours"], default=None,
                   help="lesa_fp (ours): the predicted weights' singular values replaced by their neighbours' mean")
    p.add_argument("--directions", choices=["random"], default=None,
                   help="lesa_fp (ours, a control): the predicted weights' singular vectors replaced by random ones")


def _plan_from_args(args, num_layers: int | None, model: str):
    """The plan named on the command line, validated (file form: also against the model's depth)."""
    given = [flag for key, flag in (("method", "--method"), ("layers", "--layers"))
             if getattr(args, key) is not None]
    given += [flag for key, flag in BUILDER_OPTIONS.items() if getattr(args, _dest(flag)) is not None]
    if args.plan is not None:
        if given:
            raise PlanError(f"--plan fixes the layer map and its parameters; drop {', '.join(given)} "
                            f"(or edit the plan file)")
        plan = load_plan(args.plan)
        return _warn_norms(plan if num_layers is None else check_plan_for(plan, num_layers, model, f"plan file {args.plan}"))
    method = args.method or "lesa"
    kw = {key: getattr(args, _dest(flag)) for key, flag in BUILDER_OPTIONS.items()
          if getattr(args, _dest(flag)) is not None}
    gaps = kw.get("gaps")
    if gaps and any(isinstance(g, str) for g in gaps):   # a named placement stands alone
        if len(gaps) > 1:
            raise PlanError(f"--gaps takes gap numbers or one placement name, got {' '.join(map(str, gaps))}")
        kw["gaps"] = gaps[0]
    try:
        return _warn_norms(build_plan(method, num_layers, args.layers, **kw))
    except PlanError as e:                 # name the command-line flags, not the Python keywords
        msg = str(e)
        for key, flag in BUILDER_OPTIONS.items():
            msg = msg.replace(f"option {key!r}", f"option {flag}").replace(f"'{key}'", flag)
        raise PlanError(msg) from None


def _gap_arg(v: str) -> int | str:
    """--gaps takes gap numbers or one named placement (lesa.grow.plans.PLACEMENTS)."""
    if v in PLACEMENTS:
        return v
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is neither a gap number nor a placement "
                                         f"({', '.join(sorted(PLACEMENTS))})") from None


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _source_depth(args) -> tuple[int | None, str]:
    """(depth of --model, its name); (None, '') when only a plan file is checked."""
    if args.model is None and args.plan is not None and getattr(args, "source_layers", None) is None:
        return None, ""
    if getattr(args, "source_layers", None) is not None:
        if args.model is not None:
            raise ValueError("give --model or --source-layers, not both")
        return args.source_layers, f"a {args.source_layers}-layer model"
    model = args.model or DEFAULT_MODEL
    config = load_config(model)
    return getattr(config, spec_for(config).depth_key), model


def _warn_norms(plan):
    """Warn, before any weights are loaded, about neighbour norms on full-norm predicted layers."""
    if plan.norm_source == "neighbours" and plan.method in ("lesa", "lesa_raw"):
        print(f"[lesa] warning: --norms neighbours gives the {plan.method} layers the RMSNorm gains of the "
              "layers around each gap instead of layer 0's (as released). The predictions keep the "
              "neighbours' norm but not their direction, and at the neighbours' gains they write "
              "real-sized updates in foreign directions into the residual stream (SmolLM2-135M 30 -> 45: "
              "perplexity 4.0e6 vs 282 with layer-0 norms, base 36). Use the default --norms layer0, "
              "or --method average with --norms neighbours (see lesa.study.norms).",
              file=sys.stderr, flush=True)
    return plan


def cmd_model(args) -> int:
    t0 = time.perf_counter()
    print(resolve(args.name))
    print(f"[lesa] model ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def cmd_plan(args) -> int:
    L, model = _source_depth(args)
    plan = _plan_from_args(args, L, model)
    if args.json:
        print(json.dumps(plan.to_dict()))
    elif args.yaml:
        print(plan.to_yaml(f"lesa plan: {plan.method}, {plan.source_layers} -> {plan.target_layers} layers"
                           f"{' for ' + model if model else ''}.\nEdit the slots and load it with "
                           f"`lesa expand --plan FILE`; kinds and parameters: lesa/grow/plans.py."), end="")
    else:
        print(plan.describe())
    return 0


def _predictor(args, plan):
    """(plan, PredictorConfig): command-line predictor options over the plan's own settings."""
    given = {key: getattr(args, _dest(flag)) for key, flag in PREDICTOR_OPTIONS.items()
             if getattr(args, _dest(flag)) is not None}
    overlap = {k: v for k, v in given.items() if k in plan.predictor}
    if overlap:
        plan = with_predictor(plan, **overlap)
    pred = PredictorConfig(**given)
    check_predictor_plan(plan, effective_predictor(plan, pred))
    return plan, pred


def cmd_expand(args) -> int:
    args.model = args.model or DEFAULT_MODEL
    L, _ = _source_depth(args)                                 # validate everything before weights
    plan, pred = _predictor(args, _plan_from_args(args, L, args.model))
    print(plan.describe() if args.dry_run else plan.describe().splitlines()[0])
    if args.dry_run:
        return 0
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ValueError(f"{out} exists and is not empty; pass --overwrite or another --out")
    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    t_load = time.perf_counter() - t0
    grown = apply_plan(model, plan, pred, copy_weights=False, cache_key=weights_key(args.model),
                       workers=args.workers)
    del model
    t1 = time.perf_counter()
    save_grown(grown, out, tok)
    rep = grown.lesa_report
    print(f"[lesa] wrote {out} ({plan.target_layers} layers, new at {plan.new_layers})")
    print(f"[lesa] load {t_load:.1f}s  svd {sum(rep['svd_seconds'].values()):.1f}s  "
          f"predictor {sum(rep['predictor_seconds'].values()):.1f}s summed over types "
          f"({rep.get('predictor_workers', 1)} process(es))  apply {rep['total_seconds']:.1f}s  "
          f"save {time.perf_counter() - t1:.1f}s  total {time.perf_counter() - t0:.1f}s"
          + ("  (new layers from the cache)" if rep.get("cached") else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lesa", description="Grow a pretrained LLM deeper (LESA and baselines).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("model", help="resolve/convert a model and print its local folder")
    p.add_argument("name", nargs="?", default="smollm2-135m")
    p.set_defaults(fn=cmd_model)

    p = sub.add_parser("plan", help="print the layer map of a plan (dry run: no weights loaded)",
                       epilog=_methods_help(), formatter_class=fmt)
    _add_plan_args(p)
    p.add_argument("--source-layers", type=int, default=None,
                   help="build the plan for a model of this depth instead of --model (e.g. 32 for Llama-3-8B)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--yaml", action="store_true", help="print the plan as a plan file (for --plan)")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("expand", help="grow a model and save a normal HF checkpoint",
                       epilog=_methods_help(), formatter_class=fmt)
    _add_plan_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lam", type=float, default=None, help="norm-loss weight (default: code 5e-4; paper 5e-5)")
    p.add_argument("--epochs", type=int, default=None, help="predictor epochs (default: code 10; paper 5)")
    p.add_argument("--ridge-lam", type=float, default=None,
                   help="lesa_ridge: ridge penalty relative to the mean eigenvalue of X^T X (default 1e-3)")
    p.add_argument("--seed", type=int, default=None, help="predictor and random-layer seed (default 0)")
    p.add_argument("--device", default=None, help="device for SVD and predictor training (default cpu)")
    p.add_argument("--svd", default=None, choices=["auto", "svd", "gram"], help="SVD solver (default auto)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes training the per-type predictors (default: one per CPU core for a "
                        "large CPU job, else 1); changes speed, never the weights")
    p.add_argument("--recipe", choices=["package", "released"], default=None,
                   help="predictor training: package (fast, own seeded shuffling) or released (the "
                        "release's DataLoader order and optimizer, bit for bit; slower)")
    p.add_argument("--dry-run", action="store_true", help="print the layer map and stop")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(fn=cmd_expand)

    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as e:      # our own errors carry the fix; no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:                            # `lesa plan ... | head`: the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
