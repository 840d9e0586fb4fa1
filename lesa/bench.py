"""Benchmarks that print their figures: the expansion pipeline stage by stage, against a
straightforward implementation of the released notebooks' recipe measured in the same run.

    python -m lesa.bench expansion --model smollm2-135m          # CPU: the real model
    python -m lesa.bench expansion --shapes llama3-8b --device cuda   # GPU: random 8B-shaped weights
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

from .arch import PROJECTIONS, RELEASED_ORDER
from .predictor import PredictorConfig, make_mlp, norm_loss, train_predictor
from .store import PROJECT_ROOT, provenance, write_json
from .svd import factorize

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
    spe = -(-(Ws.shape[0] - 2) * F.V.shape[1] // cfg.batch_size)
    epochs = cfg.epochs if not max_steps else max(1, -(-max_steps // spe))
    t1 = time.perf_counter()
    g = train_predictor(F.V, PredictorConfig(**{**cfg.to_dict(), "epochs": epochs}), progress=False)
    _sync(cfg.device)
    return {"svd_s": t_svd, "train_s": time.perf_counter() - t1, "steps": epochs * spe,
            "steps_per_epoch": spe, "max_rel_reconstruction_error": err, "final_loss": g.history[-1]}


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
    print(f"[bench] {label} on {device}: full recipe (10 epochs) ours {summary['ours_full_recipe_s']:.1f}s vs "
          f"released {summary['released_full_recipe_s']:.1f}s -> x{summary['speedup']:.2f}; "
          f"peak memory {summary['peak_mem_gb']:.1f} GiB")
    write_json(out, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("expansion", help="SVD + predictor per weight type, ours vs the released recipe")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="a real model (short name or folder)")
    g.add_argument("--shapes", choices=sorted(SHAPES), default=None, help="random weights of these shapes")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-steps", type=int, default=0,
                   help="0 (default) runs the full 10-epoch recipe; N > 0 times only N predictor steps "
                        "per weight type and reports the full-recipe time as N-step time scaled (labelled)")
    p.add_argument("--types", nargs="*", default=list(RELEASED_ORDER))
    p.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda requested but no CUDA device is visible", file=sys.stderr)
        return 2
    if not args.model and not args.shapes:
        args.model = "smollm2-135m"
    name = args.model or args.shapes
    out = Path(args.out) if args.out else PROJECT_ROOT / "results" / "bench" / f"expansion_{Path(name).name}_{args.device.split(':')[0]}.json"
    bench_expansion(args.model, args.shapes, args.device, args.max_steps or None, args.types, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
