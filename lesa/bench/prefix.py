"""CPT's frozen-prefix store (lesa.prefix_store), measured: one grown model trained three times over the same
batches, stepped in turn so that all three see the same load on a shared machine:

    full   prefix_reuse: off   every step runs all layers (the computation before the store)
    first  prefix_reuse: auto  the first run on these tokens: runs all layers and writes the prefix's output
    reuse  prefix_reuse: auto  a later run (another seed, w/o SVD, a lesa_fp variant): reads it

    python -m lesa.bench prefix --model smollm2-135m          # results/bench/prefix_smollm2-135m_cpu.json

Steps/s and held-out evaluation time of each, their ratios to ``full`` (measured in this one run), and
whether the three loss curves are bitwise equal (they must be).
"""
from __future__ import annotations

import contextlib
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..core.store import cpu_model, provenance, shown, write_json
from ..train.trainer import TrainConfig
from ..train.trainer import Trainer as LesaTrainer
from ..core.models import load_model
from ..grow.expand import apply_plan
from ..grow.plans import build_plan

RUNS = {"full": "off", "first": "auto", "reuse": "auto"}


@contextlib.contextmanager
def _store_in(path: str):
    """The prefix store in a fresh folder for the bench (it measures a cold first run, and leaves .cache alone)."""
    old = os.environ.get("LESA_PREFIX_DIR")
    os.environ["LESA_PREFIX_DIR"] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LESA_PREFIX_DIR", None)
        else:
            os.environ["LESA_PREFIX_DIR"] = old


def prefix_reuse_saving(base, shards: Path, heldout: Path | None, *, method: str = "average", batch: int = 4,
                        seq: int = 256, steps: int = 4, precision: str = "fp32", device: str = "cpu",
                        eval_sequences: int = 2) -> dict:
    """``base`` grown by ``method`` (a plan with LESA's layout, no predictor to train) and trained three times
    (RUNS), stepped in turn; the first step of each is a warm-up, left out of the medians."""
    plan = build_plan(method, base.config.num_hidden_layers)
    with tempfile.TemporaryDirectory() as tmp, _store_in(str(Path(tmp) / "store")):
        trainers = {}
        for name, mode in RUNS.items():
            cfg = TrainConfig(steps=steps, batch_size=batch, seq_len=seq, eval_every=0, eval_sequences=eval_sequences,
                              ckpt_every=0, progress=False, device=device, precision=precision, prefix_reuse=mode)
            trainers[name] = LesaTrainer(apply_plan(base, plan, copy_weights=True, progress=False), shards, heldout,
                                         cfg, Path(tmp) / name)
        rows: dict[str, list[dict]] = {n: [] for n in RUNS}
        evals: dict[str, list[float]] = {n: [] for n in RUNS}
        held: dict[str, list[float]] = {n: [] for n in RUNS}
        for step in range(steps + 1):
            for n, tr in trainers.items():        # held-out evaluation: before the first step and after the last
                if step in (0, steps):
                    t0 = time.perf_counter()
                    held[n].append(tr.evaluate(step)["heldout_loss"] if tr.held else None)
                    evals[n].append(time.perf_counter() - t0)
                if step < steps:
                    rows[n].append(tr.step(step))
            if step < steps:
                print(f"[bench] prefix step {step + 1}/{steps}: " + ", ".join(
                    f"{n} {rows[n][-1]['step_s']:.2f} s" for n in RUNS), flush=True)
        stores = {n: tr.prefix.summary() for n, tr in trainers.items()}
        depth, layers = trainers["reuse"].prefix.depth, trainers["reuse"].model.config.num_hidden_layers
        del trainers
    gc.collect()
    res: dict = {"method": method, "batch": batch, "seq_len": seq, "steps": steps, "precision": precision,
                 "prefix_layers": depth, "layers": layers, "interleaved": True, "runs": {}}
    for n in RUNS:
        st = [r["step_s"] for r in rows[n]]
        med = statistics.median(st[1:] or st)
        res["runs"][n] = {"loss": [r["loss"] for r in rows[n]], "grad_norm": [r["grad_norm"] for r in rows[n]],
                          "heldout_loss": held[n], "step_s": st, "step_s_median": med, "steps_per_s": 1 / med,
                          "eval_s": evals[n], "store": stores[n]}
    full = res["runs"]["full"]
    for n in ("first", "reuse"):
        r = res["runs"][n]
        r["step_speedup"] = full["step_s_median"] / r["step_s_median"]
        r["eval_speedup"] = sum(full["eval_s"]) / sum(r["eval_s"])
        r["bitwise_equal"] = (r["loss"], r["grad_norm"], r["heldout_loss"]) == \
            (full["loss"], full["grad_norm"], full["heldout_loss"])
    return res


def bench_prefix(model_name: str, shards: Path, heldout: Path | None, *, method: str = "average", batch: int = 4,
                 seq: int = 256, steps: int = 4, precisions: tuple[str, ...] = ("fp32",), device: str = "cpu",
                 eval_sequences: int = 2, out: Path | None = None, base=None) -> dict:
    """prefix_reuse_saving in each precision, printed and written to ``out``. ``base``: an already loaded
    model (tests) instead of ``model_name``."""
    if base is None:
        base, _ = load_model(model_name, tokenizer=False)
    res = {"kind": "prefix", "label": Path(model_name).name, "device": device, "cpu_model": cpu_model(),
           "torch_threads": torch.get_num_threads(), "shards": shown(shards), "by_precision": {}}
    for prec in precisions:
        r = res["by_precision"][prec] = prefix_reuse_saving(base, shards, heldout, method=method, batch=batch, seq=seq,
                                                            steps=steps, precision=prec, device=device,
                                                            eval_sequences=eval_sequences)
        for n in ("first", "reuse"):
            q = r["runs"][n]
            print(f"[bench] prefix {prec}, {n} run ({r['prefix_layers']} of {r['layers']} layers frozen below): "
                  f"step x{q['step_speedup']:.2f} ({q['steps_per_s']:.3f} vs {r['runs']['full']['steps_per_s']:.3f} "
                  f"steps/s), held-out eval x{q['eval_speedup']:.2f}, bitwise equal: {q['bitwise_equal']}", flush=True)
    res["provenance"] = provenance()
    if out:
        write_json(out, res)
        print(f"[bench] wrote {shown(out)}")
    return res
