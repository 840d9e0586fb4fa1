"""Continual pre-training (CPT) of grown models: one config dataclass, a small Trainer, a resumable loop.

    python -m lesa.train --model runs/lesa-45 --shards CORPUS/train --heldout CORPUS/heldout --out runs/cpt

Multi-GPU comes from `accelerate` (DDP / FSDP through ``accelerate launch --config_file
configs/accelerate/<x>.yaml -m lesa.train ...``); a single process is the default and runs on CPU.
Which weights train: lesa.train.freeze; FLOPs per token and MFU: lesa.core.flops; checkpoints: lesa.train.checkpoint;
the profile's comparison of methods: lesa.study.cpt.

Precision: ``fp32``, or ``bf16`` autocast (on CPU or CUDA) with fp32 trainable weights and fp32 AdamW
state; frozen weights are then stored in bf16 (they never update, so they need no fp32 master copy).

No wasted backward below the lowest trainable layer: the embeddings and the layers under the lowest
trainable one are frozen, so the hidden state entering it does not require grad and autograd never
visits them. Two things would break that and are avoided here: HF's ``gradient_checkpointing_enable``
(it calls ``enable_input_require_grads``, which forces the embedding output to require grad) -- we
checkpoint only the layers from the lowest trainable one up, with torch's non-reentrant checkpoint --
and reentrant checkpointing, which needs inputs that require grad. A test checks this.

Resume is exact: the data order is a pure function of (seed, step), the LR a pure function of step,
and a checkpoint holds the trainable weights, optimizer state, RNG states and the step.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM

from . import checkpoint as ckpt
from ..core.arch import get_layers
from ..core.flops import flops_per_token, peak_tflops
from .freeze import format_report, freeze_for_growth, growth_info
from ..core.models import _from_hub, resolve
from ..data.shards import read_meta, read_shards
from ..eval.protocol import weights_fingerprint
from ..core.store import atomic_write_text, provenance, read_json, run_main, shown, stable_hash, write_json
from .components import (DataOrder, autocast, build_optimizer, cpu_has_native_bf16, enable_checkpointing,
    heldout_loss, heldout_sets, loss_fn, lr_at, make_accelerator)
from .prefix_store import MODES as PREFIX_MODES
from .prefix_store import PrefixStore

load_trained_weights = ckpt.load_trained_weights      # public: put a run's trained layers into a grown model


@dataclass
class TrainConfig:
    steps: int = 200                   # optimizer steps
    batch_size: int = 8                # sequences per micro-batch per process
    grad_accum: int = 1                # micro-batches per optimizer step
    seq_len: int | None = None         # None: the shards' length; shorter truncates each sequence
    lr: float = 2e-4                   # peak LR (LESA's CPT hyper-parameters are NOT FOUND; common CPT value)
    min_lr_ratio: float = 0.1          # final LR = lr * min_lr_ratio
    warmup_frac: float = 0.06          # warmup steps = round(warmup_frac * steps), at least 1
    schedule: str = "cosine"           # cosine | linear | constant (after warmup)
    weight_decay: float = 0.1          # on >=2-D weights only; norms and biases get none
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0             # max global grad norm; 0 disables
    seed: int = 0                      # data order; the same for every method, so curves differ by init only
    train_all: bool = False            # True: every weight trains (freezing ablation, SOLAR's recipe)
    new_layers: list[int] | None = None  # None: config.lesa_growth["new_layers"]
    eval_every: int = 50               # held-out perplexity every N steps (and at step 0 and the end)
    eval_sequences: int = 64           # first N held-out sequences (per source folder), fixed across methods
    ckpt_every: int = 100              # checkpoint every N steps (and at the end); 0: only at the end
    device: str = "auto"               # auto | cpu | cuda ("cuda" fails early when there is none)
    precision: str = "auto"            # fp32 | bf16 (autocast; fp32 trainable weights and optimizer state)
                                       # | auto: bf16 where the hardware has bf16 matrix units and a probe finds
                                       # it faster (lesa.core.precision), else fp32; the committed profiles force one
    frozen_bf16: bool = True           # store frozen weights in bf16 when training in bf16 (not under FSDP)
    compile: bool = False              # torch.compile each decoder layer (regional compilation)
    grad_checkpointing: bool = False   # recompute activations of layers >= the lowest trainable one
    prefix_reuse: str = "auto"         # the frozen layers' output per batch from an on-disk store, computed once
                                       # for every run and eval sharing them (lesa.prefix_store; bitwise the full
                                       # computation): auto = where that is exact | on (insist) | off
    halt_after: int | None = None      # stop after this step without a final checkpoint (tests, time budgets)
    progress: bool = True              # tqdm bar on the main process

    # fields that do not change the numbers of a run (excluded from its identity key)
    _NON_KEY = ("eval_every", "ckpt_every", "halt_after", "progress", "compile", "grad_checkpointing", "prefix_reuse")

    def __post_init__(self):
        for name, ok in (("schedule", ("cosine", "linear", "constant")), ("device", ("auto", "cpu", "cuda")),
                         ("precision", ("auto", "bf16", "fp32")), ("prefix_reuse", PREFIX_MODES)):
            if getattr(self, name) not in ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; expected one of {ok}")
        if min(self.steps, self.batch_size, self.grad_accum) < 1:
            raise ValueError("steps, batch_size and grad_accum must be >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(d) - names
        if bad:
            raise ValueError(f"unknown TrainConfig fields {sorted(bad)}; known: {sorted(names)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key_fields(self) -> dict:
        return {k: v for k, v in self.to_dict().items() if k not in self._NON_KEY}

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_frac * self.steps))


def _truncate_jsonl(path: Path, step: int) -> None:
    if path.exists():
        rows = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        atomic_write_text(path, "".join(r + "\n" for r in rows))


def load_model(model: Any):
    """A module as is; a saved folder (or short name) loaded in fp32 with SDPA attention."""
    if not isinstance(model, (str, Path)):
        return model
    path = resolve(str(model))                      # a missing folder or an offline hub id: a clear error
    return _from_hub(lambda p: AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32,
                                                                    attn_implementation="sdpa"), str(model), path)


# ---------------------------------------------------------------------------------------- the trainer

class Trainer:
    """One run: the model prepared for training (frozen as configured, on its device, in its precision),
    its optimizer and data. ``step``, ``evaluate``, ``save`` and ``load`` are the whole interface; the
    loop, logs and summary live in ``train``."""

    def __init__(self, model: Any, shards_dir: str | Path, heldout_dir: str | Path | None, cfg: TrainConfig,
                 ckpt_dir: str | Path):
        self.cfg, self.ckpt_dir = cfg, Path(ckpt_dir)
        meta = read_meta(shards_dir)            # raises "build them first with `make data`" when missing
        self.data = read_shards(shards_dir)
        self.T = T = cfg.seq_len or meta["seq_len"]
        if T > meta["seq_len"] or T < 2:
            raise ValueError(f"seq_len {T} must lie in [2, {meta['seq_len']}] (the shards' length)")
        self.held = heldout_sets(heldout_dir, cfg.eval_sequences, T)
        self.acc, self.precision = acc, prec = make_accelerator(cfg)

        model = load_model(model)
        # the starting weights' identity: the run key holds the config, not the weights, so a model grown again
        # with other new layers (e.g. after its predictor was retrained) has the same key
        self.init_key = weights_fingerprint(model)
        if model.config.vocab_size < meta.get("vocab_size", 0):
            raise ValueError(f"shards use vocab {meta['vocab_size']} > model vocab {model.config.vocab_size}")
        self.report = freeze_for_growth(model, cfg.new_layers, cfg.train_all)
        if getattr(model.config, "_attn_implementation", None) == "eager":
            with contextlib.suppress(Exception):
                model.set_attn_implementation("sdpa")
        if prec == "bf16" and cfg.frozen_bf16 and not cfg.train_all and not ckpt.is_fsdp(acc):
            for p in model.parameters():
                if not p.requires_grad:
                    p.data = p.data.to(torch.bfloat16)
        layers = get_layers(model)
        if cfg.grad_checkpointing:
            enable_checkpointing(layers, self.report["lowest_trainable_layer"])
        if cfg.compile:
            for layer in layers:
                layer.compile()
        model.to(acc.device)
        model.train()
        self.layers = layers
        self.prefix = PrefixStore.for_run(model, layers, self.report, cfg.prefix_reuse, prec, device=acc.device,
                                          world=acc.num_processes, compiled=cfg.compile)
        optimizer = build_optimizer(model, cfg, fused=acc.device.type in ("cuda", "cpu") and not ckpt.is_fsdp(acc))
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

        self.world = acc.num_processes
        self.global_batch = cfg.batch_size * cfg.grad_accum * self.world
        raw = acc.unwrap_model(self.model)
        self.fpt = flops_per_token(raw, self.report["trainable_layers"], T, train_all=cfg.train_all)
        peak, self.peak_source = peak_tflops(acc.device, prec)
        self.peak = peak * 1e12 if peak else None
        self.order = DataOrder(len(self.data), cfg.seed)
        model_key = stable_hash({k: v for k, v in raw.config.to_dict().items() if not k.startswith("_")
                                 and k not in ("transformers_version", "dtype", "torch_dtype")})
        self.run_key = stable_hash({"cfg": {**cfg.key_fields(), "precision": prec}, "seq_len": T,   # resolved "G": self.global_batch,
                                    "new": self.report["trainable_layers"], "model": model_key,
                                    "data": [str(meta.get(k)) for k in ("n_sequences", "files")]})
        self.data_order_hash = stable_hash(self.order.indices(0, self.global_batch).tolist())

    def step(self, step: int) -> dict:
        """Optimizer step ``step`` (0-based) on its global batch: loss, lr, grad_norm, step_s."""
        cfg, acc = self.cfg, self.acc
        W, B, A, G, T = self.world, cfg.batch_size, cfg.grad_accum, self.global_batch, self.T
        lr = lr_at(step, cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        idx = self.order.indices(step * G, G)
        total = torch.zeros((), device=acc.device)
        for m in range(A):
            rows = idx[(m * W + acc.process_index) * B:(m * W + acc.process_index + 1) * B]
            x = torch.from_numpy(np.asarray(self.data[rows][:, :T], dtype=np.int64)).to(acc.device)
            sync = acc.no_sync(self.model) if m < A - 1 else contextlib.nullcontext()
            with sync, autocast(acc.device, self.precision), self.prefix.feeding(self.layers, x):
                loss = loss_fn(self.model, x)
                acc.backward(loss / A)
            total += loss.detach() / A
        gnorm = acc.clip_grad_norm_(self.params, cfg.grad_clip) if cfg.grad_clip else None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_val = float(acc.reduce(total, "mean"))
        return {"loss": loss_val, "lr": lr, "grad_norm": None if gnorm is None else float(gnorm),
                "step_s": time.perf_counter() - t0}

    def evaluate(self, step: int) -> dict | None:
        """Held-out loss and perplexity (token-weighted over the source folders), or None without held-out data."""
        if not self.held:
            return None
        feed = lambda x: self.prefix.feeding(self.layers, x)      # noqa: E731
        parts = {k: heldout_loss(self.model, v, self.cfg.batch_size, self.acc, self.precision, feed)
                 for k, v in self.held.items()}
        n = sum(c for _, c in parts.values())
        loss = sum(l * c for l, c in parts.values()) / n
        row = {"step": step, "tokens": step * self.global_batch * self.T, "heldout_loss": loss,
               "heldout_ppl": math.exp(loss), "n_tokens": n}
        if len(parts) > 1:
            row["by_source"] = {k: {"loss": l, "ppl": math.exp(l), "n_tokens": c} for k, (l, c) in parts.items()}
        return row

    def save(self, step: int, elapsed: float) -> None:
        ckpt.save_checkpoint(self.ckpt_dir, step, self.acc, self.model, self.optimizer,
                             {"step": step, "elapsed_s": elapsed, "run_key": self.run_key, "init_key": self.init_key})

    def load(self) -> tuple[int, float]:
        """Restore the newest checkpoint of this run; returns (step, elapsed seconds)."""
        info, path = ckpt.latest(self.ckpt_dir)
        if info["run_key"] != self.run_key:
            raise RuntimeError(f"checkpoint in {self.ckpt_dir} belongs to another run (key {info['run_key']} != "
                               f"{self.run_key}); delete it or pass resume=False")
        if info.get("init_key", self.init_key) != self.init_key:     # checkpoints before init_key: not checked
            raise RuntimeError(f"checkpoint in {self.ckpt_dir} was trained from other starting weights (fingerprint "
                               f"{info['init_key']} != {self.init_key}: the same config, a model grown differently, "
                               "e.g. a predictor retrained since); delete it to train afresh, or grow the model it "
                               "started from")
        if ckpt.is_fsdp(self.acc):
            self.acc.load_state(str(path))
        else:
            state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
            ckpt.load_weights(self.acc.unwrap_model(self.model), state["trainable"])
            self.optimizer.load_state_dict(state["optimizer"])
        m = torch.load(path / "meta.pt", map_location="cpu", weights_only=False)
        ckpt.set_rng_state(m["rng"])
        return int(m["step"]), float(m["elapsed_s"])

    def mfu(self, tokens_per_s: float | None) -> float | None:
        return None if self.peak is None or not tokens_per_s else tokens_per_s * self.fpt["total"] / (self.peak * self.world)


# ---------------------------------------------------------------------------------------- the loop

def checkpoint_bytes(tr: Trainer) -> int:
    """What one checkpoint of this run writes: the trainable weights and AdamW's two moments, in fp32."""
    return sum(p.numel() * 4 * 3 for p in tr.params)


def check_disk(tr: Trainer, name: str) -> None:
    """Refuse to start a run whose checkpoints would not fit: a save writes the new checkpoint before it removes
    the old one, so two must fit (with a margin) beside what is there, else the run would stop at its first save
    with a half-written file after minutes or hours of training."""
    tr.ckpt_dir.mkdir(parents=True, exist_ok=True)
    one = checkpoint_bytes(tr)
    need, free = 2 * one + (1 << 30), shutil.disk_usage(tr.ckpt_dir).free
    if free < need:
        raise RuntimeError(f"{name}: {free / 2**30:.1f} GiB free under {shown(tr.ckpt_dir)}, and its checkpoints need "
                           f"{need / 2**30:.1f} GiB (two of {one / 2**30:.1f} GiB: trainable weights "
                           "and optimizer state, plus 1 GiB); free disk space (e.g. finished runs' checkpoints under "
                           ".cache/cpt/) and run again: it resumes where it stopped")


def train(model: Any, shards_dir: str | Path, heldout_dir: str | Path | None, out_dir: str | Path,
          cfg: TrainConfig | None = None, *, ckpt_dir: str | Path | None = None, name: str | None = None,
          resume: bool = True, replace_stale: bool = False, run_info: dict | None = None) -> dict:
    """Train ``model`` (a module or a saved folder) on packed shards; write logs + summary to out_dir.

    out_dir/train_log.jsonl  one row per step: loss, lr, tokens, elapsed_s, step_s, grad_norm, flops, mfu
    out_dir/eval_log.jsonl   held-out loss and perplexity at step 0, every eval_every steps, and the end
    out_dir/summary.json     config, freezing report, FLOPs/token, tokens/s, final numbers, provenance
    Checkpoints go to ``ckpt_dir`` (default out_dir/ckpt); an existing one with the same run key is
    resumed; one of another run (other config, model or data) is an error, or with ``replace_stale``
    (a cache of profile runs whose config changed) deleted and trained afresh. ``run_info`` (e.g. method
    and what it trains) is recorded in the summary as ``run``.
    """
    cfg = cfg or TrainConfig()
    out_dir = Path(out_dir)
    name = name or out_dir.name
    tr = Trainer(model, shards_dir, heldout_dir, cfg, ckpt_dir or out_dir / "ckpt")
    acc, latest = tr.acc, tr.ckpt_dir / "latest.json"
    if resume and (out_dir / "summary.json").exists() and latest.exists():
        prev, info = read_json(out_dir / "summary.json"), read_json(latest)
        # done = a finished summary AND its final weights here (committed results alone are not a cache:
        # evaluating the run needs the weights, so a fresh clone trains again)
        if prev.get("completed") and prev.get("run_key") == tr.run_key == info.get("run_key") \
                and info.get("step") == cfg.steps:
            missing = [f for f in SUMMARY_FIELDS if f not in prev]
            if not missing:
                return prev
            # the same run, summarised by older code: the readers need these fields, and the step times
            # that make some of them are only measured while training
            print(f"[train] {name}: its summary was written by older code (no {', '.join(missing)}); training afresh")
            resume = False
    elif resume and (out_dir / "summary.json").exists() and not latest.exists() \
            and read_json(out_dir / "summary.json").get("completed"):
        # e.g. committed results on a fresh clone: the numbers are there, the weights to evaluate are not
        print(f"[train] {name}: finished results are in {shown(out_dir)} but its weights are not in "
              f"{shown(tr.ckpt_dir)} (a fresh checkout or a cleared cache); training again, which rewrites those "
              "results (the committed ones stay in git)", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path, eval_path = out_dir / "train_log.jsonl", out_dir / "eval_log.jsonl"
    start, elapsed = 0, 0.0
    last = read_json(latest) if latest.exists() else {}       # the checkpoint's keys (none: nothing to resume)
    if resume and last and replace_stale and (last.get("run_key") != tr.run_key or
                                              last.get("init_key", tr.init_key) != tr.init_key):
        print(f"[train] {name}: the checkpoint in {shown(tr.ckpt_dir)} is of another configuration or starting "
              "weights; training afresh")
        resume = False
    logged = read_json(out_dir / "summary.json").get("run_key") if (out_dir / "summary.json").exists() else None
    if resume and last and logged and logged != last.get("run_key"):
        # resuming truncates the logs at the checkpoint's step and appends: with another run's logs in out_dir
        # (e.g. a committed run whose weights were lost, retrained from a different start) that splices two runs
        raise RuntimeError(f"{name}: the logs in {shown(out_dir)} are of another run (key {logged}) than the "
                           f"checkpoint in {shown(tr.ckpt_dir)} (key {last.get('run_key')}); move one "
                           "of them away (the logs are in git if committed), then train again")
    if resume and latest.exists():
        start, elapsed = tr.load()
        if acc.is_main_process:
            _truncate_jsonl(log_path, start)
            _truncate_jsonl(eval_path, start)
    elif acc.is_main_process:
        for p in (log_path, eval_path):
            p.unlink(missing_ok=True)
        shutil.rmtree(tr.ckpt_dir, ignore_errors=True)
    check_disk(tr, name)
    acc.wait_for_everyone()
    G, T = tr.global_batch, tr.T
    if acc.is_main_process:
        native = "" if tr.precision == "fp32" or acc.device.type != "cpu" or cpu_has_native_bf16() else \
            " (emulated: this CPU has no bf16 instructions)"
        print(f"[train] {name}: {format_report(tr.report)}\n"
              f"[train] {tr.world} process(es) on {acc.device}, {tr.precision}{native}, global batch {G} x {T} "
              f"tokens, {tr.fpt['total'] / 1e9:.3f} GFLOP/token, steps {start}->{cfg.steps}\n"
              f"[train] frozen prefix: {tr.prefix.why}")

    def log(path: Path, row: dict | None) -> None:
        if row is not None and acc.is_main_process:
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")

    if start == 0:
        log(eval_path, tr.evaluate(0))
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=name,
               disable=not (cfg.progress and acc.is_main_process), dynamic_ncols=True)
    step_times = []
    for step in bar:
        r = tr.step(step)
        dt, n = r["step_s"], step + 1
        elapsed += dt
        step_times.append(dt)
        tps = G * T / dt
        log(log_path, {"step": n, "loss": r["loss"], "lr": r["lr"], "tokens": n * G * T,
                       "elapsed_s": round(elapsed, 4), "step_s": round(dt, 4), "tokens_per_s": round(tps, 2),
                       "grad_norm": r["grad_norm"], "flops": tr.fpt["total"] * n * G * T, "mfu": tr.mfu(tps)})
        bar.set_postfix(loss=f"{r['loss']:.4f}", tok_s=f"{tps:.0f}")
        if cfg.eval_every and n % cfg.eval_every == 0 and n != cfg.steps:
            log(eval_path, tr.evaluate(n))
        if cfg.halt_after is not None and n >= cfg.halt_after and n < cfg.steps:
            bar.close()
            return {"halted_at": n, "completed": False, "run_key": tr.run_key}
        if (cfg.ckpt_every and n % cfg.ckpt_every == 0) or n == cfg.steps:
            if n == cfg.steps:
                log(eval_path, tr.evaluate(n))
            tr.save(n, elapsed)
    bar.close()
    summary = _summary(tr, name, out_dir, shards_dir, heldout_dir, step_times, elapsed, run_info)
    if acc.is_main_process:
        write_json(out_dir / "summary.json", summary)
    return summary


# fields a finished run's summary must have to be reused (a summary of older code without them is retrained)
SUMMARY_FIELDS = ("step_s_median", "flops_per_token", "data_order_hash", "trainable", "growth")


def _summary(tr: Trainer, name: str, out_dir: Path, shards_dir, heldout_dir, step_times: list[float],
             elapsed: float, run_info: dict | None) -> dict:
    cfg, G, T = tr.cfg, tr.global_batch, tr.T
    med = statistics.median(step_times[1:] or step_times) if step_times else None
    tps = G * T / med if med else None
    evals = [json.loads(x) for x in (out_dir / "eval_log.jsonl").read_text().splitlines()] \
        if (out_dir / "eval_log.jsonl").exists() else []
    rows = [json.loads(x) for x in (out_dir / "train_log.jsonl").read_text().splitlines()] \
        if (out_dir / "train_log.jsonl").exists() else []
    return {
        "name": name, "completed": True, "run_key": tr.run_key, "init_key": tr.init_key, "run": run_info, "steps": cfg.steps,
        "tokens": cfg.steps * G * T, "global_batch": G, "seq_len": T, "world_size": tr.world,
        "device": str(tr.acc.device), "precision": tr.precision,
        "final_loss": rows[-1]["loss"] if rows else None,
        "initial_heldout_ppl": evals[0]["heldout_ppl"] if evals else None,
        "final_heldout_ppl": evals[-1]["heldout_ppl"] if evals else None,
        "step_s_median": med, "tokens_per_s": tps, "tokens_per_s_note": "median step, first step of this "
        "session excluded; all processes", "elapsed_s": elapsed,
        "flops_per_token": tr.fpt["total"], "flops_per_token_forward": tr.fpt["forward"],
        "flops_naive_6N_trainable": tr.fpt["naive_6N_trainable"],
        "peak_flops_per_device": tr.peak, "peak_source": tr.peak_source, "mfu": tr.mfu(tps),
        "trainable": tr.report, "data_order_hash": tr.data_order_hash,
        "growth": growth_info(tr.acc.unwrap_model(tr.model)), "config": cfg.to_dict(),
        "prefix_reuse": tr.prefix.summary(),       # this session's batches (a resumed run counts from its resume)
        "shards": shown(shards_dir), "heldout": shown(heldout_dir) if heldout_dir else None,
        "checkpoint_dir": shown(tr.ckpt_dir), "provenance": provenance(),
    }


# ---------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m lesa.train", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="saved (expanded) model folder")
    ap.add_argument("--shards", required=True, help="training token shards (from `make data`)")
    ap.add_argument("--heldout", default=None, help="held-out shards (a folder, or a folder of per-source folders)")
    ap.add_argument("--out", required=True, help="output folder for logs and summary")
    ap.add_argument("--ckpt-dir", default=None)
    ap.add_argument("--config", default=None, help="YAML/JSON file of TrainConfig fields")
    ap.add_argument("--new-layers", default=None, help="comma-separated indices (default: lesa_growth)")
    ap.add_argument("--no-resume", action="store_true")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("new_layers", "betas") or f.name.startswith("_"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction)
        else:
            conv = {"int": int, "float": float, "int | None": int}.get(str(f.type), str)
            ap.add_argument(flag, dest=f.name, default=None, type=conv)
    a = ap.parse_args(argv)
    d: dict = {}
    if a.config:
        d.update(yaml.safe_load(Path(a.config).read_text()) or {})
    d.update({f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(a, f.name, None) is not None})
    if a.new_layers:
        d["new_layers"] = [int(x) for x in a.new_layers.split(",")]
    return train(a.model, a.shards, a.heldout, a.out, TrainConfig.from_dict(d), ckpt_dir=a.ckpt_dir,
                 resume=not a.no_resume)


if __name__ == "__main__":
    sys.exit(run_main(main))
