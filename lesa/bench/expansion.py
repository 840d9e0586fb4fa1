"""Expansion benchmark: the expansion pipeline stage by stage, against a straightforward implementation of
the released notebooks' recipe measured in the same run."""
from __future__ import annotations

import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from ..core.arch import PROJECTIONS, RELEASED_ORDER
from ..grow.kinds import predictor_steps
from ..grow.predictor import PredictorConfig, make_mlp, norm_loss, train_predictor
from ..core.store import provenance, write_json
from ..grow.svd import factorize
from torch.utils.data import DataLoader, TensorDataset
from ..core.models import load_model
from ..grow.expand import apply_plan, save_grown
from ..grow.plans import build_plan


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
