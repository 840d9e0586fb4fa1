"""Benchmarks that print their figures and write results/bench/<kind>_<model>_<device>.json:

    expansion  the expansion pipeline stage by stage, against a straightforward implementation of the
               released notebooks' recipe measured in the same run
    training   tokens/s and MFU of the lesa trainer against a default Hugging Face `Trainer` on the
               same grown model, batch, sequence length, tokens and device, in the same run; then
               lesa's trainer in fp32 vs bf16, stepped in turn (tokens/s, loss curves, held-out ppl)
    eval       samples/s and requests/s of the benchmark suite (lm-eval) and of the perplexity code,
               plus the rates implied by the recorded results runs (results/base/)
    all        the three, in that order (`make bench`)

    python -m lesa.bench all --model smollm2-135m                     # CPU: the real model
    python -m lesa.bench expansion --shapes llama3-8b --device cuda   # GPU: random 8B-shaped weights
    python -m lesa.bench training --device cuda                       # MFU from lesa.flops' peak table

`bench_markdown()` renders every results/bench/*.json as the book's benchmark tables.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.state import AcceleratorState
from transformers import Trainer, TrainerCallback, TrainingArguments

from .arch import PROJECTIONS, RELEASED_ORDER, get_layers, spec_for
from .expand import apply_plan, predictor_steps
from .flops import flops_per_token
from .flops import peak_tflops as peak_tflops_of
from .freeze import freeze_for_growth, new_layer_indices
from .models import load_model
from .plans import build_plan
from .predictor import PredictorConfig, make_mlp, norm_loss, train_predictor
from .shards import read_shards
from .store import PROJECT_ROOT, commit_label, hardware_label, provenance, read_json, write_json
from .svd import factorize
from .train import TrainConfig, train
from .train import Trainer as LesaTrainer
from .train_components import DataOrder, cpu_has_native_bf16

# Random-weight stand-ins with a real model's exact shapes: (layers, hidden, ffn, heads, kv_heads, head_dim)
SHAPES = {"llama3-8b": (32, 4096, 14336, 32, 8, 128), "smollm2-135m": (30, 576, 1536, 9, 3, 64)}


def shape_table(name: str) -> dict[str, tuple[int, int, int]]:
    """(L, d_out, d_in) per weight type for a named shape set."""
    L, h, f, nh, nkv, hd = SHAPES[name]
    return {"q": (L, nh * hd, h), "k": (L, nkv * hd, h), "v": (L, nkv * hd, h), "o": (L, h, nh * hd),
            "gate": (L, f, h), "up": (L, f, h), "down": (L, h, f)}


def peak_mem_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20        # KiB -> GiB (Linux)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def released_recipe(Ws: torch.Tensor, cfg: PredictorConfig, max_steps: int | None = None) -> dict:
    """The released notebook, written plainly: fp32 torch.linalg.svd of the concatenation, a shuffled
    DataLoader over (X, Y) rows and a per-batch Python loop with default (unfused) AdamW."""
    from torch.utils.data import DataLoader, TensorDataset

    dev = cfg.device
    t0 = time.perf_counter()
    W = torch.cat(list(Ws.to(dev, torch.float32)), dim=1)                  # (d_out, L*d_in)
    U, S, Vt = torch.linalg.svd(W, full_matrices=False)
    L, d_out, d_in = Ws.shape
    V = [Vt[:, i * d_in:(i + 1) * d_in] for i in range(L)]
    _sync(dev)
    t_svd = time.perf_counter() - t0
    X = torch.cat([torch.cat([V[i - 1], V[i + 1]], dim=1) for i in range(1, L - 1)])
    Y = torch.cat([V[i] for i in range(1, L - 1)])
    loader = DataLoader(TensorDataset(X, Y), batch_size=cfg.batch_size, shuffle=True)
    mlp = make_mlp(d_in, cfg).to(dev)
    opt = torch.optim.AdamW(mlp.parameters(), lr=cfg.lr)
    steps, t1 = 0, time.perf_counter()
    for _ in range(cfg.epochs):
        for xb, yb in loader:
            loss = norm_loss(mlp(xb), yb, cfg.lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if max_steps and steps >= max_steps:
                break
        if max_steps and steps >= max_steps:
            break
    _sync(dev)
    return {"svd_s": t_svd, "train_s": time.perf_counter() - t1, "steps": steps,
            "steps_per_epoch": -(-X.shape[0] // cfg.batch_size)}


def ours(Ws: torch.Tensor, cfg: PredictorConfig, max_steps: int | None = None) -> dict:
    t0 = time.perf_counter()
    F = factorize(Ws, device=cfg.device, method=cfg.svd_method)
    _sync(cfg.device)
    t_svd = time.perf_counter() - t0
    err = max(((F.reconstruct(i) - Ws[i].to(F.US)).norm() / Ws[i].norm()).item() for i in range(len(Ws)))
    spe = predictor_steps(tuple(Ws.shape), dataclasses.replace(cfg, epochs=1))     # steps per epoch
    epochs = cfg.epochs if not max_steps else max(1, -(-max_steps // spe))
    t1 = time.perf_counter()
    g = train_predictor(F.V, PredictorConfig(**{**cfg.to_dict(), "epochs": epochs}), progress=False)
    _sync(cfg.device)
    return {"svd_s": t_svd, "train_s": time.perf_counter() - t1, "steps": epochs * spe,
            "steps_per_epoch": spe, "max_rel_reconstruction_error": err, "final_loss": g.history[-1]}


def end_to_end(model, cfg: PredictorConfig, load_s: float) -> dict:
    """The product path as `lesa expand` runs it: apply_plan (LESA plan, automatic predictor
    processes, no cache) then save_grown, each stage timed."""
    from .expand import apply_plan, save_grown
    from .plans import build_plan

    plan = build_plan("lesa", model.config.num_hidden_layers)
    t0 = time.perf_counter()
    grown = apply_plan(model, plan, cfg, copy_weights=False, progress=False)
    t_grow = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        save_grown(grown, tmp)
        t_save = time.perf_counter() - t1
    rep = grown.lesa_report
    out = {"load_s": load_s, "svd_s": sum(rep["svd_seconds"].values()), "grow_s": t_grow, "save_s": t_save,
           "predictor_workers": rep.get("predictor_workers"), "total_s": load_s + t_grow + t_save,
           "cpus": os.cpu_count(), "goal_s": 60.0}
    print(f"[bench] end to end (lesa expand path, {out['predictor_workers']} predictor process(es)): load "
          f"{load_s:.1f}s + grow {t_grow:.1f}s (SVD {out['svd_s']:.1f}s) + save {t_save:.1f}s = {out['total_s']:.1f}s",
          flush=True)
    if str(cfg.device).startswith("cpu") and cfg.flush_denormal:     # the CPU fast path, checked: same bits?
        t0 = time.perf_counter()
        kept = apply_plan(model, plan, dataclasses.replace(cfg, flush_denormal=False), copy_weights=False,
                          progress=False)
        out["grow_s_denormals_kept"] = time.perf_counter() - t0
        a, b = grown.state_dict(), kept.state_dict()
        out["identical_with_denormals_kept"] = all(torch.equal(a[k], b[k]) for k in a)
        print(f"[bench] grow with denormals kept (flush_denormal=False): {out['grow_s_denormals_kept']:.1f}s; "
              f"weights identical: {out['identical_with_denormals_kept']}", flush=True)
    if "predict" in {s.kind for s in plan.slots}:      # the other predictor path, same run
        other = dataclasses.replace(cfg, batched=not cfg.batched)
        t0 = time.perf_counter()
        alt = apply_plan(model, plan, other, copy_weights=False, progress=False)
        t_alt = time.perf_counter() - t0
        a, b = grown.state_dict(), alt.state_dict()
        key = "grow_s_batched" if other.batched else "grow_s_one_by_one"
        out["predictors_batched"] = cfg.batched
        out[key] = t_alt
        out["batched_vs_one_by_one_max_abs_diff"] = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        one, bat = (t_grow, t_alt) if other.batched else (t_alt, t_grow)
        out["total_s_batched"] = load_s + bat + t_save
        out["total_s_one_by_one"] = load_s + one + t_save
        print(f"[bench] grow with batched predictors {bat:.1f}s vs one by one {one:.1f}s (x{one / bat:.2f}); "
              f"end to end {out['total_s_batched']:.1f}s vs {out['total_s_one_by_one']:.1f}s; weights differ by at "
              f"most {out['batched_vs_one_by_one_max_abs_diff']:.1e}", flush=True)
    return out


def bench_end_to_end(model: str, device: str, out: Path) -> dict:
    """Only the end-to-end expansion (one-by-one and batched predictors, denormals kept) of a real
    model: the part of `bench expansion` that the predictor paths change, in a few minutes."""
    from .models import load_model

    t0 = time.perf_counter()
    m, _ = load_model(model)
    t_load = time.perf_counter() - t0
    summary = {"kind": "expansion_e2e", "label": model, "device": device,
               "end_to_end": end_to_end(m, PredictorConfig(device=device), t_load), "provenance": provenance()}
    write_json(out, summary)
    return summary


def bench_expansion(model: str | None, shapes: str | None, device: str, max_steps: int | None,
                    types: list[str], out: Path) -> dict:
    cfg = PredictorConfig(device=device)
    rows, t_all = [], time.perf_counter()
    if model:
        from .models import load_model

        t0 = time.perf_counter()
        m, _ = load_model(model)
        t_load = time.perf_counter() - t0
        weights = {s: torch.stack([layer.get_submodule(PROJECTIONS[s]).weight.detach()
                                   for layer in m.model.layers]) for s in types}
        label = model
    else:
        t_load, label = 0.0, f"random-{shapes}"
        gen = torch.Generator().manual_seed(0)
        table = shape_table(shapes)
        weights = {s: (torch.randn(table[s], generator=gen) * 0.02) for s in types}
    for s in types:
        Ws = weights[s]
        a = ours(Ws, cfg, max_steps)
        b = released_recipe(Ws, cfg, max_steps)
        per_step = lambda r: (r["train_s"] / r["steps"])
        row = {"weight": s, "shape": list(Ws.shape), **{f"ours_{k}": v for k, v in a.items()},
               **{f"released_{k}": v for k, v in b.items()},
               "svd_speedup": b["svd_s"] / a["svd_s"], "train_step_speedup": per_step(b) / per_step(a),
               "ours_full_recipe_s": a["svd_s"] + per_step(a) * a["steps_per_epoch"] * cfg.epochs,
               "released_full_recipe_s": b["svd_s"] + per_step(b) * b["steps_per_epoch"] * cfg.epochs}
        rows.append(row)
        print(f"{s:>5} {tuple(Ws.shape)}: svd {a['svd_s']:.2f}s vs released {b['svd_s']:.2f}s "
              f"(x{row['svd_speedup']:.1f}, rel err {a['max_rel_reconstruction_error']:.1e}); "
              f"train step {per_step(a) * 1e3:.2f}ms vs {per_step(b) * 1e3:.2f}ms (x{row['train_step_speedup']:.1f})",
              flush=True)
    summary = {"label": label, "device": device, "load_s": t_load, "types": types,
               "ours_full_recipe_s": t_load + sum(r["ours_full_recipe_s"] for r in rows),
               "released_full_recipe_s": t_load + sum(r["released_full_recipe_s"] for r in rows),
               "max_steps_measured": max_steps, "peak_mem_gb": peak_mem_gb(device),
               "bench_wall_s": time.perf_counter() - t_all, "rows": rows, "provenance": provenance()}
    summary["speedup"] = summary["released_full_recipe_s"] / summary["ours_full_recipe_s"]
    if model and not max_steps and types == list(RELEASED_ORDER):
        summary["end_to_end"] = end_to_end(m, cfg, t_load)
    print(f"[bench] {label} on {device}: full recipe (10 epochs) ours {summary['ours_full_recipe_s']:.1f}s vs "
          f"released {summary['released_full_recipe_s']:.1f}s -> x{summary['speedup']:.2f}; "
          f"peak memory {summary['peak_mem_gb']:.1f} GiB")
    write_json(out, summary)
    return summary


# ---------------------------------------------------------------------------------------- training

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
    """lesa.train.train on ``model`` (trained in place) for warmup + steps steps; per-step times from
    its train log (data indexing, forward, backward, clipping, optimizer step, loss sync)."""
    seen, handle = _count_tokens(model)
    n = warmup + steps
    cfg = TrainConfig(steps=n + 1, halt_after=n, batch_size=batch, seq_len=seq, lr=lr, eval_every=0,
                      ckpt_every=0, progress=False, device=device)   # halts after n steps, no checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        train(model, shards, None, tmp, cfg, name="bench-lesa", resume=False)
        rows = [json.loads(x) for x in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
    handle.remove()
    return {"steps_run": len(rows), "tokens_seen": seen["tokens"], "tokens_logged": rows[-1]["tokens"],
            "optimizer": "AdamW fused",       # lesa.train_components.build_optimizer: fused on CUDA and CPU (not FSDP)
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


# ---------------------------------------------------------------------------------------- evaluation

def _count_requests(lm) -> dict:
    """Wrap lm.loglikelihood to count requests and the seconds spent scoring them."""
    stats, inner = {"requests": 0, "model_s": 0.0}, lm.loglikelihood

    def loglikelihood(requests, *args, **kwargs):
        t0 = time.perf_counter()
        out = inner(requests, *args, **kwargs)
        stats["requests"] += len(requests)
        stats["model_s"] += time.perf_counter() - t0
        return out

    lm.loglikelihood = loglikelihood
    return stats


def recorded_eval_rates(root: Path | None = None) -> list[dict]:
    """samples/s implied by the committed evaluation records (n_samples / seconds of each run)."""
    rows = []
    for p in sorted((root or PROJECT_ROOT / "results" / "base").glob("*/*.json")):
        r = read_json(p)
        if not r.get("n_samples") or not r.get("seconds"):
            continue
        hw = (r.get("provenance") or {}).get("hardware", {})
        rows.append({"label": r.get("label"), "task": r["task"], "n_samples": r["n_samples"], "seconds": r["seconds"],
                     "samples_per_s": r["n_samples"] / r["seconds"], "batch_size": r.get("batch_size"),
                     "dtype": (r.get("model") or {}).get("dtype"), "cpus": hw.get("cpus"),
                     "threads": hw.get("torch_threads"), "gpu": hw.get("gpu"),
                     "commit": (r.get("provenance") or {}).get("commit"),
                     "file": str(p.relative_to(PROJECT_ROOT if p.is_relative_to(PROJECT_ROOT) else p.parents[2]))})
    return rows


def _wikitext_bf16(model, tok, full_limit: int | None, subset: int, batch: int) -> dict:
    """(a) WikiText word perplexity in bf16 (autocast) over ``full_limit`` documents (None: all 62),
    and bf16 against fp32 on the first ``subset`` documents (fp32 only on the subset: the full fp32
    run costs ~10 min on 2 cores). Refused, and recorded so, on a device without native bf16."""
    from .evaluate import bf16_supported, perplexity

    dev = next(model.parameters()).device
    if not bf16_supported(dev):
        print(f"[bench] eval wikitext bf16: skipped, {dev} has no native bf16 (AVX-512/AMX or a bf16 GPU)")
        return {"status": "bf16 not supported on this device"}
    run = lambda prec, lim: perplexity(model, tok, "wikitext", limit=lim, batch_size=batch, progress=False,
                                       precision=prec)
    sub = {p: run(p, subset) for p in ("fp32", "bf16")}                  # interleaved pair on the subset
    full = run("bf16", full_limit)
    rel = sub["bf16"]["value"] / sub["fp32"]["value"] - 1
    out = {"status": "ok", "full_docs": full["n_samples"], "full_bf16_s": full["seconds"],
           "full_bf16_word_ppl": full["value"], "subset_docs": subset,
           "subset_fp32_s": sub["fp32"]["seconds"], "subset_bf16_s": sub["bf16"]["seconds"],
           "subset_word_ppl": {p: r["value"] for p, r in sub.items()}, "subset_rel_diff": rel}
    print(f"[bench] eval wikitext bf16: {full['n_samples']} docs in {full['seconds']} s (word ppl {full['value']:.4f}); "
          f"first {subset} docs bf16 vs fp32: {100 * rel:+.3f} % word ppl, {sub['fp32']['seconds'] / sub['bf16']['seconds']:.2f}x faster")
    return out


def _prefix_vs_hf(model, tok, tasks: list[str], limit: int, batch: int, precision: str) -> list[dict]:
    """(b) per task, in one run and interleaved: samples/s of lesa's prefix-sharing LM and lm-eval's
    HFLM at the same precision, and the ceiling the token counts allow (tokens HFLM runs / tokens
    run with contexts shared)."""
    from .evaluate import make_lm, run_task

    lms = {k: make_lm(model, tok, batch_size=batch, precision=precision, lm=k) for k in ("hf", "prefix")}
    rows = []
    for task in tasks:
        row = {"task": task, "precision": precision, "batch_size": batch}
        for k in ("hf", "prefix"):
            before = (lms["prefix"].tokens_computed, lms["prefix"].tokens_hflm)
            rec = run_task(lms[k], task, limit=limit)
            row[f"{k}_seconds"], row[f"{k}_value"] = rec["seconds"], rec["value"]
            row["n_samples"] = rec["n_samples"]
            row[f"{k}_samples_per_s"] = rec["n_samples"] / rec["seconds"]
            if k == "prefix":
                row["tokens_prefix"] = lms["prefix"].tokens_computed - before[0]
                row["tokens_hflm"] = lms["prefix"].tokens_hflm - before[1]
        row["speedup"] = row["prefix_samples_per_s"] / row["hf_samples_per_s"]
        row["ceiling"] = row["tokens_hflm"] / max(row["tokens_prefix"], 1)
        print(f"[bench] eval {task:>10} ({precision}): prefix {row['prefix_samples_per_s']:.2f} vs HFLM "
              f"{row['hf_samples_per_s']:.2f} samples/s -> x{row['speedup']:.2f} (token ceiling x{row['ceiling']:.2f}; "
              f"{row['n_samples']} samples; acc {row['prefix_value']:.4f} vs {row['hf_value']:.4f})", flush=True)
        rows.append(row)
    return rows


def bench_eval(model_name: str, *, tasks: list[str], limit: int, batch: int = 8, ppl_limit: int = 1,
               ppl_batch: int = 4, device: str = "cpu", out: Path | None = None, wikitext_docs: int | None = None,
               wikitext_subset: int = 4) -> dict:
    """lm-eval tasks through lesa.evaluate (make_lm + run_task, what run_benchmarks runs per task) and
    the WikiText perplexity code on the base model (fp32 weights); prefix-sharing LM against HFLM;
    bf16 WikiText where the device has native bf16."""
    from .evaluate import bf16_supported, make_lm, perplexity, run_task
    from .models import load_model

    t_all = time.perf_counter()
    model, tok = load_model(model_name, device=device)
    precision = "bf16" if bf16_supported(device) else "fp32"
    lm = make_lm(model, tok, batch_size=batch, precision=precision)
    stats, rows = _count_requests(lm), []
    for task in tasks:
        r0, s0 = stats["requests"], stats["model_s"]
        rec = run_task(lm, task, limit=limit)
        req, ms = stats["requests"] - r0, stats["model_s"] - s0
        rows.append({"task": task, "n_samples": rec["n_samples"], "requests": req, "seconds": rec["seconds"],
                     "model_s": round(ms, 2), "samples_per_s": rec["n_samples"] / rec["seconds"],
                     "requests_per_s": req / ms, "batch_size": batch, "value": rec["value"]})
    ppl = perplexity(model, tok, "wikitext", limit=ppl_limit, batch_size=ppl_batch, progress=False, precision=precision)
    rows.append({"task": "ppl_wikitext", "n_samples": ppl["n_samples"], "requests": ppl["n_windows"],
                 "seconds": ppl["seconds"], "model_s": None, "samples_per_s": ppl["n_samples"] / ppl["seconds"],
                 "requests_per_s": ppl["n_windows"] / ppl["seconds"], "batch_size": ppl_batch,
                 "tokens_per_s": ppl["n_tokens"] / ppl["seconds"], "value": ppl["value"]})
    for r in rows:
        tps = f", {r['tokens_per_s']:.0f} tokens/s" if "tokens_per_s" in r else ""
        print(f"[bench] eval {r['task']:>13}: {r['n_samples']} samples, {r['requests']} requests in {r['seconds']} s "
              f"-> {r['samples_per_s']:.2f} samples/s, {r['requests_per_s']:.2f} requests/s{tps} "
              f"(batch {r['batch_size']})")
    prefix = _prefix_vs_hf(model, tok, tasks, limit, batch, precision)
    wiki = _wikitext_bf16(model, tok, wikitext_docs, wikitext_subset, ppl_batch)
    recorded = recorded_eval_rates()
    for r in recorded:
        print(f"[bench] recorded {r['task']:>13}: {r['samples_per_s']:.2f} samples/s "
              f"({r['n_samples']} in {r['seconds']} s, batch {r['batch_size']}, from {r['file']})")
    summary = {"kind": "eval", "label": model_name, "device": device, "dtype": "float32", "precision": precision,
               "limit": limit, "ppl_limit": ppl_limit, "threads": torch.get_num_threads(), "rows": rows,
               "prefix_vs_hf": prefix, "wikitext_bf16": wiki, "recorded": recorded,
               "bench_wall_s": time.perf_counter() - t_all, "provenance": provenance()}
    if out:
        write_json(out, summary)
    return summary


# ---------------------------------------------------------------------------------------- book tables

def _prov(d: dict, path: Path) -> str:
    p = d.get("provenance") or {}
    v = p.get("versions", {})
    return (f"Measured {p.get('time_utc')} at commit {commit_label(p.get('commit'))} on "
            f"{hardware_label(p.get('hardware'))}; torch {v.get('torch')}, transformers {v.get('transformers')}. "
            f"Source: `results/bench/{path.name}`.")


def _table(head: list[str], rows: list[list]) -> list[str]:
    from .analysis import fmt

    cell = lambda x: x if isinstance(x, str) else fmt(x)
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(cell(x) for x in r) + " |" for r in rows), ""]


def _md_expansion(d: dict, path: Path) -> list[str]:
    steps = d.get("max_steps_measured")
    predictor = f"a 10-epoch predictor scaled from {steps} measured steps" if steps else "the 10-epoch predictor"
    rows = [[r["weight"], "x".join(map(str, r["shape"])), r["ours_svd_s"], r["released_svd_s"], r["svd_speedup"],
             1e3 * r["ours_train_s"] / r["ours_steps"], 1e3 * r["released_train_s"] / r["released_steps"],
             r["train_step_speedup"], r["ours_full_recipe_s"], r["released_full_recipe_s"]] for r in d["rows"]]
    return [f"### Expansion: {d['label']} on {d['device']}", "", _prov(d, path), "",
            *_table(["weight", "stack (L, out, in)", "SVD ours s", "SVD released s", "SVD x", "step ours ms",
                     "step released ms", "step x", "recipe ours s", "recipe released s"], rows),
            f"Full recipe (load, SVD and {predictor} for every weight type): **{d['ours_full_recipe_s']:.1f} s** "
            f"against {d['released_full_recipe_s']:.1f} s for the released recipe, **x{d['speedup']:.2f}**; "
            f"peak memory {d['peak_mem_gb']:.1f} GiB.", "", *_md_end_to_end(d.get("end_to_end"))]


def _md_e2e(d: dict, path: Path) -> list[str]:
    return [f"### Expansion end to end: {d['label']} on {d['device']}", "", _prov(d, path), "",
            *_md_end_to_end(d["end_to_end"])]


def _md_end_to_end(e: dict | None) -> list[str]:
    if not e:
        return []
    verdict = "met" if e["total_s"] <= e["goal_s"] else "not met"
    return [f"End to end as `lesa expand` runs it ({e['predictor_workers']} predictor process(es) on "
            f"{e['cpus']} CPUs): load {e['load_s']:.1f} s + grow {e['grow_s']:.1f} s (of which SVD "
            f"{e['svd_s']:.1f} s) + save {e['save_s']:.1f} s = **{e['total_s']:.1f} s**; the goal of "
            f"{e['goal_s']:.0f} s is **{verdict}** in this run.", "", *_md_flush(e), *_md_batched(e)]


def _md_batched(e: dict) -> list[str]:
    if "total_s_batched" not in e:
        return []
    return [f"Predictors of the weight types that share an input width trained as one batched MLP "
            f"(`PredictorConfig(batched=True)`): end to end {e['total_s_batched']:.1f} s against "
            f"{e['total_s_one_by_one']:.1f} s one by one in the same run (x{e['total_s_one_by_one'] / e['total_s_batched']:.2f}); "
            f"the grown weights differ by at most {e['batched_vs_one_by_one_max_abs_diff']:.1e} (summation order).", ""]


def _md_flush(e: dict) -> list[str]:
    if "grow_s_denormals_kept" not in e:
        return []
    same = "identical bit for bit" if e["identical_with_denormals_kept"] else "**NOT identical**"
    return [f"The CPU fast path flushes denormal floats to zero while the predictors train "
            f"(`PredictorConfig.flush_denormal`). Grown again with denormals kept, the same expansion took "
            f"{e['grow_s_denormals_kept']:.1f} s instead of {e['grow_s']:.1f} s, and the grown model's weights are "
            f"{same}.", ""]


def _md_training(d: dict, path: Path) -> list[str]:
    names = {"lesa": "lesa trainer (`lesa.train.train`)", "hf_trainer": "default `transformers.Trainer`"}
    rows = [[names[k], r["tokens_per_s"], r["step_s_median"], "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
             r["tokens_timed"], r["tokens_seen"], f"{r['changed_tensors']} / {'yes' if r['new_layers_only'] else 'NO'}"]
            for k, r in d["trainers"].items()]
    peak = (f"peak {d['peak_tflops']} TFLOP/s ({d['peak_source']})" if d.get("peak_tflops")
            else "MFU not reported: no meaningful published peak for a CPU (pass `--peak-tflops`)")
    title = f"{d['label']} ({d['method']}, {d['layers']} layers, new {len(d['new_layers'])}) on {d['device']}"
    return [f"### Training: {title}", "", _prov(d, path), "",
            *_table(["trainer", "tokens/s", "step s (median)", "MFU", "tokens timed", "tokens seen",
                     "tensors trained / new layers only"], rows),
            f"Batch {d['batch']} x {d['seq_len']} tokens, {d['warmup_steps']} warm-up + {d['timed_steps']} timed steps "
            f"each, same sequences, same device; {d['flops_per_token'] / 1e9:.3f} GFLOP/token (lesa's count: frozen "
            f"layers above the lowest new one pay forward and input-gradient backward); {peak}. "
            f"lesa / HF Trainer tokens/s: **x{d['tokens_per_s_ratio_lesa_over_hf']:.2f}**; both trained the same "
            f"parameters: **{'yes' if d['same_trained_params'] else 'NO'}**. "
            f"Non-default `TrainingArguments`: `{json.dumps(d['hf_training_args'])}`; optimizers: "
            + ", ".join(f"{k} `{r.get('optimizer')}`" for k, r in d["trainers"].items()) + ".", "",
            *_md_precision(d.get("precision"))]


def _md_precision_file(d: dict, path: Path) -> list[str]:
    title = f"{d['label']} ({d['method']}, {d['layers']} layers, new {len(d['new_layers'])}) on {d['device']}"
    return [f"### Training precision: {title}", "", _prov(d, path), "", *_md_precision(d)]


def _md_precision(p: dict | None) -> list[str]:
    if not p:
        return []
    rows = [[k, r["tokens_per_s"], r["step_s_median"], r["loss"][-1], r["heldout_ppl_start"], r["heldout_ppl_end"]]
            for k, r in p["runs"].items()]
    native = {True: "has bf16 instructions", False: "has no bf16 instructions (torch emulates bf16)",
              None: "GPU"}[p.get("cpu_native_bf16")]
    return ["lesa trainer, fp32 vs bf16 autocast (fp32 trainable weights and optimizer state), stepped in turn "
            f"over the same {p['steps']} batches of {p['batch']} x {p['seq_len']} tokens (this CPU {native}):", "",
            *_table(["precision", "tokens/s", "step s (median)", "final loss", "held-out ppl before",
                     "held-out ppl after"], rows),
            f"bf16 / fp32 tokens/s: **x{p['tokens_per_s_ratio_bf16_over_fp32']:.2f}**; largest relative difference "
            f"bf16 vs fp32: training loss {100 * p['loss_max_rel_diff']:.2f}% over the {p['steps']} steps, held-out "
            f"perplexity {100 * (p['heldout_ppl_max_rel_diff'] or 0):.2f}% (target: at most "
            f"{100 * p['target_max_rel_diff']:.0f}%).", ""]


def _md_eval(d: dict, path: Path) -> list[str]:
    from .analysis import fmt

    rows = [[r["task"], r["n_samples"], r["requests"], r["seconds"], r["samples_per_s"], r["requests_per_s"],
             r["batch_size"]] for r in d["rows"]]
    rec = [[r["task"], r["n_samples"], r["seconds"], r["samples_per_s"], r["batch_size"],
            f"{r['cpus']} CPU, {r['threads']} thr" if not r.get("gpu") else r["gpu"], f"`{r['file']}`"]
           for r in d.get("recorded", [])]
    out = [f"### Evaluation: {d['label']} ({d['dtype']}) on {d['device']}", "", _prov(d, path), "",
           *_table(["task", "samples", "requests", "seconds", "samples/s", "requests/s", "batch"], rows),
           f"First {d['limit']} documents per lm-eval task (requests: log-likelihood calls, timed inside the "
           f"model wrapper); perplexity: {d['ppl_limit']} WikiText document(s), requests = rolling windows"
           + "".join(f", {fmt(r['tokens_per_s'])} tokens/s" for r in d["rows"] if r.get("tokens_per_s")) + ".", ""]
    if d.get("prefix_vs_hf"):
        pr = [[r["task"], r["n_samples"], r["hf_samples_per_s"], r["prefix_samples_per_s"], f"x{fmt(r['speedup'])}",
               r["tokens_hflm"], r["tokens_prefix"], f"x{fmt(r['ceiling'])}"] for r in d["prefix_vs_hf"]]
        out += [f"Prefix-sharing LM (`lesa.prefix_lm.PrefixLM`, the default) against lm-eval's HFLM, same model, "
                f"{d['prefix_vs_hf'][0]['precision']}, same run, interleaved per task; the ceiling is the tokens HFLM "
                "runs over the tokens run with each context shared:", "",
                *_table(["task", "samples", "HFLM samples/s", "prefix samples/s", "speed-up", "tokens HFLM",
                         "tokens prefix", "ceiling"], pr)]
    w = d.get("wikitext_bf16")
    if w:
        out += ([f"WikiText in bf16 (autocast, fp32 weights): {w['full_docs']} documents in {fmt(w['full_bf16_s'])} s, "
                 f"word perplexity {fmt(w['full_bf16_word_ppl'], 6)}; on the first {w['subset_docs']} documents bf16 "
                 f"differs from fp32 by {fmt(100 * w['subset_rel_diff'])} % and runs "
                 f"x{fmt(w['subset_fp32_s'] / w['subset_bf16_s'])} faster (fp32 measured on that subset only).", ""]
                if w.get("status") == "ok" else [f"WikiText in bf16: not measured ({w.get('status')}).", ""])
    if rec:
        out += ["From the recorded results runs (`results/base/`, n_samples / seconds of each record; those "
                "runs shared the machine with other jobs):", "",
                *_table(["task", "samples", "seconds", "samples/s", "batch", "hardware", "record"], rec)]
    return out


def bench_markdown(results: str | Path | None = None) -> str:
    """Markdown tables of every results/bench/*.json (expansion, training, eval), with provenance."""
    files = sorted(Path(results or PROJECT_ROOT / "results" / "bench").glob("*.json"))
    render = {"expansion": _md_expansion, "expansion_e2e": _md_e2e, "training": _md_training,
              "precision": _md_precision_file, "eval": _md_eval}
    lines, devices = ["Generated by `lesa.bench.bench_markdown()` from `results/bench/*.json` (`make bench`).", ""], {}
    for kind in render:
        for p in files:
            d = read_json(p)
            if (d.get("kind") or p.name.split("_")[0]) == kind:
                lines += render[kind](d, p)
                devices.setdefault(kind, set()).add(str(d.get("device", "cpu")).split(":")[0])
    if not files:
        lines += ["*No benchmark results yet: run `make bench`.*", ""]
    missing = [what for kind, what in (("expansion", "the 8B-shaped expansion on one GPU"),
                                       ("training", "training tokens/s and MFU on a GPU"))
               if "cuda" not in devices.get(kind, set())]
    if missing:
        lines += ["```{note}", "Still to be measured: " + " and ".join(missing) + ". No GPU has been lent to this "
                  "project's runs so far, so every figure above is from a CPU.", "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- CLI

def _out(args, kind: str) -> Path:
    name = Path(args.model or getattr(args, "shapes", None) or "smollm2-135m").name
    return PROJECT_ROOT / "results" / "bench" / f"{kind}_{name}_{args.device.split(':')[0]}.json"


def _shards() -> Path:
    from .data import DataError, latest_corpus

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
        ("all", "expansion, training and eval"))}
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
    from .store import run_main

    sys.exit(run_main(main))
