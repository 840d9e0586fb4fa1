"""Benchmarks that print their figures and write results/bench/<kind>_<model>_<device>.json:

    expansion  the expansion pipeline stage by stage, against a straightforward implementation of the
               released notebooks' recipe measured in the same run
    training   tokens/s and MFU of the lesa trainer against a default Hugging Face `Trainer` on the
               same grown model, batch, sequence length, tokens and device, in the same run; then
               lesa's trainer in fp32 vs bf16, stepped in turn (tokens/s, loss curves, held-out ppl)
    eval       samples/s and requests/s of the benchmark suite (lm-eval) and of the perplexity code,
               plus the rates implied by the recorded results runs (results/base/)
    all        the three, in that order (`make bench`)
    hardware   fp32 vs bf16 on this machine in one run (a matmul, the model's forward and training step)
               and the shared-prefix saving on a tiny slice (lesa.bench.hardware)
    prefix     CPT steps/s without, writing and reading the frozen-prefix store, one run (lesa.bench.prefix)

    python -m lesa.bench all --model smollm2-135m                     # CPU: the real model
    python -m lesa.bench expansion --shapes llama3-8b --device cuda   # GPU: random 8B-shaped weights
    python -m lesa.bench training --device cuda                       # MFU from lesa.core.flops' peak table
    python -m lesa.bench hardware --model smollm2-135m                # bf16 and shared-prefix ratios here
    taskset -c 1 python -m lesa.bench prefix --model smollm2-135m     # CPT's frozen-prefix store, one core

`bench_markdown()` renders every results/bench/*.json as the book's benchmark tables.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..core.arch import RELEASED_ORDER
from ..train.components import cpu_has_native_bf16

# The benchmarks live in one module per subcommand; their names stay importable from here
# (`from lesa import bench; bench.bench_training(...)`), which tests and the book use.
from .evaluation import bench_eval
from .hardware import bench_hardware
from .prefix import bench_prefix
from .expansion import (SHAPES, bench_end_to_end, bench_expansion)
from .training import (bench_precision, bench_training, grown_model)
from ..core.layout import Results
from ..core.store import write_json
from .replicate import compare
from ..core.precision import cpu_bf16_flags, host_class
from ..data.prepare import DataError, latest_corpus


# ---------------------------------------------------------------------------------------- CLI

def _out(args, kind: str, by_host: bool = False) -> Path:
    """results/bench/<kind>_<model>_<device>.json; ``by_host``: a CPU record also names its bf16 host class (amx,
    avx512bf16, nobf16), so that hosts of different classes keep a record each."""
    name = Path(args.model or getattr(args, "shapes", None) or "smollm2-135m").name
    dev = args.device.split(":")[0]
    host = f"_{host_class(cpu_bf16_flags())}" if by_host and dev == "cpu" else ""
    return Results("bench").file(f"{kind}_{name}_{dev}{host}.json")


def _shards() -> Path:
    try:
        return latest_corpus() / "train"
    except DataError:
        return latest_corpus(fast=True) / "train"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ps = {c: sub.add_parser(c, help=h) for c, h in (
        ("expansion", "SVD + predictor per weight type, ours vs the released recipe"),
        ("training", "tokens/s and MFU: lesa trainer vs a default transformers.Trainer"),
        ("eval", "samples/s of the benchmark suite and the perplexity code"),
        ("all", "expansion, training and eval"),
        ("hardware", "fp32 vs bf16 (matmul, forward, training step) and the shared-prefix saving, one run"),
        ("prefix", "CPT steps/s without, writing and reading the frozen-prefix store, one run"),
        ("replicate", "a `make replicate` run from an empty cache against the committed record, stage by stage"))}
    for c, p in ps.items():
        p.add_argument("--device", default="cpu")
        p.add_argument("--out", default=None, help="output JSON (not with `all`)" if c != "all" else argparse.SUPPRESS)
        if c == "expansion":
            g = p.add_mutually_exclusive_group()
            g.add_argument("--model", default=None, help="a real model (short name or folder)")
            g.add_argument("--shapes", choices=sorted(SHAPES), default=None, help="random weights of these shapes")
            p.add_argument("--types", nargs="*", default=list(RELEASED_ORDER))
            p.add_argument("--end-to-end-only", action="store_true",
                           help="only the end-to-end expansion of --model, one-by-one vs batched predictors")
        else:
            p.add_argument("--model", default="smollm2-135m", help="short name or folder")
        if c in ("expansion", "all"):
            p.add_argument("--max-steps", type=int, default=0,
                           help="0 (default) runs the full 10-epoch recipe; N > 0 times only N predictor steps "
                                "per weight type and reports the full-recipe time as N-step time scaled (labelled)")
        if c in ("training", "all"):
            p.add_argument("--method", default="llama_pro", help="growth plan (a heuristic: no predictor training)")
            p.add_argument("--target", type=int, default=None, help="target depth (default 1.5x)")
            p.add_argument("--batch", type=int, default=4)
            p.add_argument("--seq", type=int, default=256)
            p.add_argument("--warmup", type=int, default=2)
            p.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up")
            p.add_argument("--lr", type=float, default=2e-4)
            p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: GPU table)")
            p.add_argument("--precision-steps", type=int, default=None,
                           help="steps of the fp32 vs bf16 comparison (loss curves, held-out ppl, tokens/s); 0 skips "
                                "it; default 30 where bf16 is native, 0 on a CPU that emulates it (minutes for nothing)")
            p.add_argument("--precision-only", action="store_true",
                           help="only the fp32 vs bf16 comparison (results/bench/training_precision_*.json)")
            p.add_argument("--eval-sequences", type=int, default=8,
                           help="held-out sequences per source for the perplexity of --precision-only")
        if c == "prefix":
            p.add_argument("--method", default="average", help="growth plan with LESA's layout (no predictor to train)")
            p.add_argument("--batch", type=int, default=4, help="the cpu profile's CPT batch")
            p.add_argument("--seq", type=int, default=256, help="the cpu profile's CPT sequence length")
            p.add_argument("--steps", type=int, default=4, help="steps per run (the first is a warm-up)")
            p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
            p.add_argument("--eval-sequences", type=int, default=2, help="held-out sequences per source")
        if c == "replicate":
            p.add_argument("--run", required=True, help="results/ folder of the checkout where `make replicate` ran")
            p.add_argument("--profile", default="cpu")
            p.add_argument("--prelude-s", type=float, default=None,
                           help="the run's seconds before its stages (setup, models, data), if measured")
            p.add_argument("--estimate-note", default=None, help="what to know about the estimate the run printed")
            p.add_argument("--prelude-note", default=None, help="how --prelude-s was measured, if not by this run")
        if c == "hardware":
            p.add_argument("--matmul-size", type=int, default=2048)
            p.add_argument("--batch", type=int, default=8, help="forward: sequences")
            p.add_argument("--seq", type=int, default=1024, help="forward: tokens per sequence")
            p.add_argument("--train-batch", type=int, default=4)
            p.add_argument("--train-seq", type=int, default=256)
            p.add_argument("--prefix-batch", type=int, default=2, help="shared-prefix slice: sequences")
            p.add_argument("--prefix-seq", type=int, default=128, help="shared-prefix slice: tokens per sequence")
            p.add_argument("--reps", type=int, default=3, help="timings per measurement (best kept)")
            p.add_argument("--ppl", action="store_true", help="also notebook 3's WikiText screen in fp32 and bf16 for "
                           "the base model, SOLAR and LESA (seed 1) beside the committed fp32 values (minutes)")
        if c in ("eval", "all"):
            p.add_argument("--tasks", nargs="*", default=["arc_easy", "piqa", "hellaswag"])
            p.add_argument("--limit", type=int, default=40)
            p.add_argument("--eval-batch", type=int, default=8, help="the batch of the recorded results")
            p.add_argument("--ppl-limit", type=int, default=1)
            p.add_argument("--wikitext-docs", type=int, default=None,
                           help="bf16 WikiText documents (default: all 62; only with native bf16)")
            p.add_argument("--wikitext-subset", type=int, default=4,
                           help="first documents on which bf16 is compared with fp32")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda requested but no CUDA device is visible", file=sys.stderr)
        return 2
    one = args.cmd != "all" and args.out
    if args.cmd == "hardware":
        bench_hardware(args.model, device=args.device, matmul_size=args.matmul_size, batch=args.batch, seq=args.seq,
                       train_batch=args.train_batch, train_seq=args.train_seq, prefix_batch=args.prefix_batch,
                       prefix_seq=args.prefix_seq, reps=args.reps, ppl=args.ppl, out=Path(one) if one else _out(args, "hardware", by_host=True))
        return 0
    if args.cmd == "replicate":
        rec = compare(args.profile, args.run, prelude_s=args.prelude_s, estimate_note=args.estimate_note,
                      prelude_note=args.prelude_note)
        prec = (rec["run_precision"] or {}).get("protocol", "fp32")
        host = host_class(rec.get("bf16_units"))         # one record per profile, precision and host class
        write_json(Path(one) if one else Results("bench").file(
            f"replicate_{args.profile}_{prec}{'_' + host if host else ''}.json"), rec)
        return 0
    if args.cmd == "prefix":
        shards = _shards()
        bench_prefix(args.model, shards, shards.parent / "heldout", method=args.method, batch=args.batch, seq=args.seq,
                     steps=args.steps, precisions=tuple(args.precision), device=args.device,
                     eval_sequences=args.eval_sequences, out=Path(one) if one else _out(args, "prefix"))
        return 0
    if args.cmd in ("expansion", "all"):
        if not args.model and not getattr(args, "shapes", None):
            args.model = "smollm2-135m"
        if getattr(args, "end_to_end_only", False):
            bench_end_to_end(args.model, args.device, Path(one) if one else _out(args, "expansion_e2e"))
            return 0
        bench_expansion(args.model, getattr(args, "shapes", None), args.device, args.max_steps or None,
                        getattr(args, "types", list(RELEASED_ORDER)), Path(one) if one else _out(args, "expansion"))
    if args.cmd in ("training", "all"):
        if args.precision_steps is None:
            native = args.device.startswith("cuda") or cpu_has_native_bf16()
            args.precision_steps = 30 if native or getattr(args, "precision_only", False) else 0
            if not args.precision_steps:
                print("[bench] fp32 vs bf16 training comparison skipped: this CPU has no bf16 instructions, torch "
                      "emulates bf16 (slower than fp32); --precision-steps N runs it anyway")
        model = grown_model(args.model, args.method, args.target)
        shards = _shards()
        if getattr(args, "precision_only", False):
            bench_precision(model, shards, shards.parent / "heldout", label=Path(args.model).name, batch=args.batch,
                            seq=args.seq, steps=args.precision_steps, lr=args.lr, device=args.device,
                            eval_sequences=args.eval_sequences, out=Path(one) if one else _out(args, "training_precision"))
        else:
            bench_training(model, shards, label=Path(args.model).name, batch=args.batch, seq=args.seq,
                           warmup=args.warmup, steps=args.steps, lr=args.lr, device=args.device,
                           peak_tflops=args.peak_tflops, precision_steps=args.precision_steps,
                           heldout=shards.parent / "heldout", out=Path(one) if one else _out(args, "training"))
        del model
    if args.cmd in ("eval", "all"):
        bench_eval(args.model, tasks=args.tasks, limit=args.limit, batch=args.eval_batch, ppl_limit=args.ppl_limit,
                   device=args.device, out=Path(one) if one else _out(args, "eval"),
                   wikitext_docs=args.wikitext_docs, wikitext_subset=args.wikitext_subset)
    return 0


if __name__ == "__main__":
    from ..core.store import run_main

    sys.exit(run_main(main))
