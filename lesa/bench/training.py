"""Training benchmark: tokens/s and MFU of the lesa trainer against a default Hugging Face `Trainer` on the
same grown model, batch, sequence length, tokens and device, in the same run; then lesa's trainer in fp32 vs bf16."""
from __future__ import annotations

import copy
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.state import AcceleratorState
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..core.arch import get_layers, spec_for
from .expansion import _sync
from ..grow.expand import apply_plan
from ..core.flops import flops_per_token
from ..core.flops import peak_tflops as peak_tflops_of
from ..train.freeze import freeze_for_growth, new_layer_indices
from ..core.models import load_model
from ..grow.plans import build_plan
from ..data.shards import read_shards
from .. import PROJECT_ROOT
from ..core.store import provenance, write_json
from ..train.trainer import TrainConfig, train
from ..train.trainer import Trainer as LesaTrainer
from ..train.components import DataOrder, cpu_has_native_bf16


def grown_model(name: str, method: str = "llama_pro", target: int | None = None):
    """The source model grown by a heuristic plan (no predictor training; LLaMA Pro: 30 -> 45 layers)."""
    base, _ = load_model(name, tokenizer=False)
    return apply_plan(base, build_plan(method, base.config.num_hidden_layers, target), copy_weights=False,
                      progress=False)


def _count_tokens(model) -> tuple[dict, object]:
    """Count the input tokens of every forward pass (a measurement, not steps x batch x seq)."""
    seen = {"tokens": 0}

    def hook(_module, args, kwargs):
        x = kwargs.get("input_ids", args[0] if args else None)
        seen["tokens"] += int(x.numel())

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


def trained_params(model, ref) -> dict:
    """Which parameters are trainable and which ones training changed, compared with ``ref`` (the
    untouched grown model), each at the trained model's dtype (frozen weights may be stored in bf16)."""
    refs = dict(ref.named_parameters())
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    changed = sorted(n for n, p in model.named_parameters()
                     if not torch.equal(p.detach().cpu(), refs[n].detach().to(p.dtype)))
    return {"trainable": trainable, "changed": changed}


def _new_layer_params(model) -> list[str]:
    layers, path = get_layers(model), spec_for(model.config).layers_path
    return sorted(f"{path}.{i}.{n}" for i in new_layer_indices(model) for n, _ in layers[i].named_parameters())


def _timed(step_s: list[float], n_tokens: int, warmup: int) -> dict:
    timed = step_s[warmup:]                                   # steady state: warm-up steps dropped
    return {"step_s": timed, "step_s_mean": statistics.mean(timed), "step_s_median": statistics.median(timed),
            "tokens_timed": n_tokens * len(timed), "tokens_per_s": n_tokens * len(timed) / sum(timed)}


def time_lesa(model, shards: Path, *, batch: int, seq: int, warmup: int, steps: int, lr: float,
              device: str) -> dict:
    """lesa.train.trainer.train on ``model`` (trained in place) for warmup + steps steps; per-step times from
    its train log (data indexing, forward, backward, clipping, optimizer step, loss sync)."""
    seen, handle = _count_tokens(model)
    n = warmup + steps
    cfg = TrainConfig(steps=n + 1, halt_after=n, batch_size=batch, seq_len=seq, lr=lr, eval_every=0,
                      ckpt_every=0, progress=False, device=device,   # halts after n steps, no checkpoint
                      precision="bf16" if device.startswith("cuda") else "fp32")   # as the HF Trainer it is timed against
    with tempfile.TemporaryDirectory() as tmp:
        train(model, shards, None, tmp, cfg, name="bench-lesa", resume=False)
        rows = [json.loads(x) for x in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
    handle.remove()
    return {"steps_run": len(rows), "tokens_seen": seen["tokens"], "tokens_logged": rows[-1]["tokens"],
            "optimizer": "AdamW fused",       # lesa.train.components.build_optimizer: fused on CUDA and CPU (not FSDP)
            **_timed([r["step_s"] for r in rows], batch * seq, warmup)}


def time_hf_trainer(model, shards: Path, *, batch: int, seq: int, warmup: int, steps: int, lr: float,
                    device: str) -> tuple[dict, dict]:
    """A default transformers.Trainer on ``model`` (trained in place; frozen as lesa freezes it) over the
    same sequences lesa's trainer reads first; a step's time is the interval between consecutive
    ``on_step_end`` callbacks (data loading included). Returns (timing, the non-default arguments)."""
    freeze_for_growth(model)                                  # the same new layers as lesa's trainer
    n = warmup + steps
    data = read_shards(shards)
    rows = np.asarray(data[DataOrder(len(data), 0).indices(0, n * batch)][:, :seq], dtype=np.int64)  # (n*B, T)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            x = torch.from_numpy(rows[i])
            return {"input_ids": x, "labels": x}               # the model shifts labels itself

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            _sync(device)
            self.ends.append(time.perf_counter())

    overrides = {"per_device_train_batch_size": batch, "max_steps": n, "learning_rate": lr,
                 "report_to": "none", "save_strategy": "no", "logging_strategy": "no", "disable_tqdm": True,
                 **({"bf16": True} if device.startswith("cuda") else {"use_cpu": True})}
    clock = Clock()
    AcceleratorState._reset_state(True)                       # a fresh state, as lesa's trainer takes
    seen, handle = _count_tokens(model)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=tmp, **overrides),
                          train_dataset=Rows(), callbacks=[clock])
        trainer.train()
    handle.remove()
    step_s = [b - a for a, b in zip(clock.ends, clock.ends[1:])]   # steps 2..n (step 1 is warm-up)
    timing = {"steps_run": trainer.state.global_step, "tokens_seen": seen["tokens"],
              "optimizer": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
              **_timed(step_s, batch * seq, warmup - 1)}
    del trainer
    return timing, overrides


def compare_precisions(model, shards: Path, heldout: Path | None, *, batch: int, seq: int, steps: int,
                       lr: float, device: str, eval_sequences: int = 8) -> dict:
    """lesa's trainer in fp32 and in bf16 on copies of the grown ``model``, stepped in turn (fp32, bf16,
    fp32, ...) over the same batches, so both see the same load on a shared machine: tokens/s of each
    (first step dropped), the loss curves, and held-out perplexity before and after training."""
    precs = ("fp32", "bf16")
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {p: LesaTrainer(copy.deepcopy(model), shards, heldout, TrainConfig(
            steps=steps, batch_size=batch, seq_len=seq, lr=lr, eval_every=0, eval_sequences=eval_sequences,
            ckpt_every=0, progress=False, device=device, precision=p), Path(tmp) / p) for p in precs}
        start = {p: t.evaluate(0) for p, t in trainers.items()}
        rows: dict[str, list[dict]] = {p: [] for p in precs}
        for step in range(steps):
            for p in precs:
                rows[p].append(trainers[p].step(step))
            print(f"[bench] precision step {step + 1}/{steps}: " + ", ".join(
                f"{p} loss {rows[p][-1]['loss']:.4f} ({rows[p][-1]['step_s']:.2f} s)" for p in precs), flush=True)
        end = {p: t.evaluate(steps) for p, t in trainers.items()}
        del trainers
    gc.collect()
    res = {}
    for p in precs:
        st = [r["step_s"] for r in rows[p]]
        timed = st[1:] or st
        res[p] = {"loss": [r["loss"] for r in rows[p]], "step_s": st, "step_s_median": statistics.median(timed),
                  "tokens_per_s": batch * seq * len(timed) / sum(timed),
                  "heldout_ppl_start": start[p]["heldout_ppl"] if start[p] else None,
                  "heldout_ppl_end": end[p]["heldout_ppl"] if end[p] else None}
    a, b = res["fp32"], res["bf16"]
    rel = lambda x, y: abs(y - x) / abs(x)
    ppl = [rel(a[k], b[k]) for k in ("heldout_ppl_start", "heldout_ppl_end") if a[k] is not None]
    return {"steps": steps, "batch": batch, "seq_len": seq, "interleaved": True, "runs": res,
            "cpu_native_bf16": cpu_has_native_bf16() if device == "cpu" else None,
            "tokens_per_s_ratio_bf16_over_fp32": b["tokens_per_s"] / a["tokens_per_s"],
            "loss_max_rel_diff": max(rel(x, y) for x, y in zip(a["loss"], b["loss"])),
            "heldout_ppl_max_rel_diff": max(ppl) if ppl else None, "target_max_rel_diff": 0.01,
            "heldout_sequences_per_source": eval_sequences}


def bench_precision(model, shards: str | Path, heldout: str | Path | None, *, label: str, batch: int = 4,
                    seq: int = 256, steps: int = 30, lr: float = 2e-4, device: str = "cpu",
                    eval_sequences: int = 8, out: Path | None = None) -> dict:
    """compare_precisions alone (no HF Trainer runs), written as results/bench/training_precision_*.json."""
    t0 = time.perf_counter()
    p = compare_precisions(model, Path(shards), Path(heldout) if heldout else None, batch=batch, seq=seq,
                           steps=steps, lr=lr, device=device, eval_sequences=eval_sequences)
    summary = {"kind": "precision", "label": label, "device": device,
               "method": (model.config.lesa_growth or {}).get("method"), "layers": model.config.num_hidden_layers,
               "new_layers": new_layer_indices(model), "lr": lr, "threads": torch.get_num_threads(), **p,
               "bench_wall_s": time.perf_counter() - t0, "provenance": provenance()}
    print(f"[bench] {label} on {device}: bf16 / fp32 tokens/s = x{p['tokens_per_s_ratio_bf16_over_fp32']:.2f}; "
          f"max relative difference over {steps} steps: loss {100 * p['loss_max_rel_diff']:.2f}%, "
          f"held-out ppl {100 * (p['heldout_ppl_max_rel_diff'] or 0):.2f}%", flush=True)
    if out:
        write_json(out, summary)
    return summary


def bench_training(model, shards: str | Path, *, label: str, batch: int = 4, seq: int = 256, warmup: int = 2,
                   steps: int = 3, lr: float = 2e-4, device: str = "cpu", peak_tflops: float | None = None,
                   precision_steps: int = 0, heldout: str | Path | None = None, out: Path | None = None) -> dict:
    """Both trainers on deep copies of the grown ``model`` (left untouched), same tokens, same device;
    with ``precision_steps`` also lesa's trainer in fp32 vs bf16 for that many steps (compare_precisions)."""
    if warmup < 1 or steps < 1:
        raise ValueError("need at least one warm-up step and one timed step")
    shards, t_all = Path(shards), time.perf_counter()
    new = new_layer_indices(model)
    fpt = flops_per_token(model, new, seq)      # frozen layers above the lowest new one: forward + input grad
    peak_src = "--peak-tflops" if peak_tflops else None
    if not peak_tflops:
        peak_tflops, peak_src = peak_tflops_of(device, "bf16" if device.startswith("cuda") else "fp32")
    expected = _new_layer_params(model)
    runs, hf_args = {}, None
    for name in ("hf_trainer", "lesa"):                       # HF first: it runs before lesa flips TF32 on CUDA
        m = copy.deepcopy(model)
        kw = dict(batch=batch, seq=seq, warmup=warmup, steps=steps, lr=lr, device=device)
        if name == "lesa":
            r = time_lesa(m, shards, **kw)
        else:
            r, hf_args = time_hf_trainer(m, shards, **kw)
        tp = trained_params(m, model)
        r.update(trainable_tensors=len(tp["trainable"]), changed_tensors=len(tp["changed"]),
                 trained_numel=sum(p.numel() for n, p in m.named_parameters() if n in set(tp["changed"])),
                 new_layers_only=tp["trainable"] == tp["changed"] == expected,
                 mfu=r["tokens_per_s"] * fpt["total"] / (peak_tflops * 1e12) if peak_tflops else None)
        runs[name] = {**r, "_params": tp}
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        print(f"[bench] training {name:>10}: {r['tokens_per_s']:.1f} tokens/s, step {r['step_s_median']:.3f} s "
              f"(median of {steps}), MFU {mfu}, "
              f"trained {r['changed_tensors']} tensors (new layers only: {r['new_layers_only']})", flush=True)
        del m
        gc.collect()
    params = {k: runs[k].pop("_params") for k in runs}
    prec = None
    if precision_steps:
        prec = compare_precisions(model, shards, Path(heldout) if heldout else None, batch=batch, seq=seq,
                                  steps=precision_steps, lr=lr, device=device)
        print(f"[bench] bf16 / fp32 tokens/s = x{prec['tokens_per_s_ratio_bf16_over_fp32']:.2f} "
              f"({prec['runs']['bf16']['tokens_per_s']:.1f} vs {prec['runs']['fp32']['tokens_per_s']:.1f}); "
              f"max relative difference over {precision_steps} steps: loss {100 * prec['loss_max_rel_diff']:.2f}%, "
              f"held-out ppl {100 * (prec['heldout_ppl_max_rel_diff'] or 0):.2f}%", flush=True)
    summary = {"kind": "training", "label": label, "device": device,
               "method": (model.config.lesa_growth or {}).get("method"), "layers": model.config.num_hidden_layers,
               "new_layers": new, "batch": batch, "seq_len": seq,
               "warmup_steps": warmup, "timed_steps": steps, "lr": lr, "threads": torch.get_num_threads(),
               "flops_per_token": fpt["total"], "flops_per_token_forward": fpt["forward"],
               "peak_tflops": peak_tflops, "peak_source": peak_src, "trainers": runs,
               "tokens_per_s_ratio_lesa_over_hf": runs["lesa"]["tokens_per_s"] / runs["hf_trainer"]["tokens_per_s"],
               "same_trained_params": params["lesa"] == params["hf_trainer"], "hf_training_args": hf_args,
               "precision": prec,
               "data": str(shards.relative_to(PROJECT_ROOT)) if shards.is_relative_to(PROJECT_ROOT) else shards.name,
               "bench_wall_s": time.perf_counter() - t_all, "provenance": provenance()}
    print(f"[bench] training {label} on {device}, batch {batch} x {seq}: lesa / HF Trainer tokens/s = "
          f"x{summary['tokens_per_s_ratio_lesa_over_hf']:.2f}; {fpt['total'] / 1e9:.3f} GFLOP/token; "
          f"same parameters trained: {summary['same_trained_params']}")
    if out:
        write_json(out, summary)
    return summary
