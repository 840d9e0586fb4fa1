"""Command line: thin wrappers over the package.

    lesa model smollm2-135m                                    # convert/cache the default model
    lesa plan --model smollm2-135m --method lesa --layers 45   # dry run: layer map, no weights
    lesa expand --model smollm2-135m --method lesa --layers 45 --out runs/lesa-45
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _add_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m", help="short name, local HF folder, or hub id")
    p.add_argument("--method", default="lesa",
                   help="lesa | lesa_raw | llama_pro | solar | average | random | copy")
    p.add_argument("--layers", type=int, default=None, help="target depth (default 1.5x the source)")
    p.add_argument("--gaps", type=int, nargs="*", default=None,
                   help="LESA/controls: gaps k (new layer between k and k+1); default the top gaps")
    p.add_argument("--after", type=int, nargs="*", default=None,
                   help="LLaMA Pro: original layers after which an identity copy is inserted")
    p.add_argument("--norms", choices=["layer0", "neighbours"], default=None,
                   help="norms/biases of predicted layers (default: layer0 for lesa, as released)")


def _plan_from_args(args, num_layers: int):
    from .plans import build_plan

    kw = {}
    if args.gaps is not None:
        kw["gaps"] = args.gaps
    if args.after is not None:
        kw["after"] = args.after
    if args.norms is not None:
        kw["norm_source"] = args.norms
    return _warn_norms(build_plan(args.method, num_layers, args.layers, **kw))


def _warn_norms(plan):
    """Warn, before any weights are loaded, about neighbour norms on full-norm predicted layers."""
    if plan.norm_source == "neighbours" and plan.method in ("lesa", "lesa_raw"):
        print(f"[lesa] warning: --norms neighbours gives the {plan.method} layers the RMSNorm gains of the "
              "layers around each gap instead of layer 0's (as released). The predictions keep the "
              "neighbours' norm but not their direction, and at the neighbours' gains they write "
              "real-sized updates in foreign directions into the residual stream (SmolLM2-135M 30 -> 45: "
              "perplexity 4.0e6 vs 282 with layer-0 norms, base 36). Use the default --norms layer0, "
              "or --method average with --norms neighbours (see lesa.norms).",
              file=sys.stderr, flush=True)
    return plan


def cmd_model(args) -> int:
    from .models import resolve

    t0 = time.perf_counter()
    print(resolve(args.name))
    print(f"[lesa] model ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def cmd_plan(args) -> int:
    from .arch import spec_for
    from .models import load_config

    config = load_config(args.model)
    spec = spec_for(config)
    plan = _plan_from_args(args, getattr(config, spec.depth_key))
    print(json.dumps(plan.to_dict()) if args.json else plan.describe())
    return 0


def cmd_expand(args) -> int:
    from pathlib import Path

    from .arch import spec_for
    from .expand import apply_plan, save_grown
    from .models import load_config, load_model, weights_key
    from .predictor import PredictorConfig

    config = load_config(args.model)                          # validate everything before weights
    spec = spec_for(config)
    plan = _plan_from_args(args, getattr(config, spec.depth_key))
    pred = PredictorConfig(lam=args.lam, epochs=args.epochs, seed=args.seed, device=args.device,
                           svd_method=args.svd, recipe=args.recipe)
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
          f"save {time.perf_counter() - t1:.1f}s  total {time.perf_counter() - t0:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lesa", description="Grow a pretrained LLM deeper (LESA and baselines).")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("model", help="resolve/convert a model and print its local folder")
    p.add_argument("name", nargs="?", default="smollm2-135m")
    p.set_defaults(fn=cmd_model)

    p = sub.add_parser("plan", help="print the layer map of a plan (dry run: no weights loaded)")
    _add_plan_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(fn=cmd_plan)

    p = sub.add_parser("expand", help="grow a model and save a normal HF checkpoint")
    _add_plan_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lam", type=float, default=5e-4, help="norm-loss weight (code 5e-4, paper 5e-5)")
    p.add_argument("--epochs", type=int, default=10, help="predictor epochs (code 10, paper 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="device for SVD and predictor training")
    p.add_argument("--svd", default="auto", choices=["auto", "svd", "gram"], help="SVD solver")
    p.add_argument("--workers", type=int, default=None,
                   help="processes training the per-type predictors (default: one per CPU core for a "
                        "large CPU job, else 1); changes speed, never the weights")
    p.add_argument("--recipe", choices=["package", "released"], default="package",
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
