"""What this machine gains from bf16 and from the shared prefix, measured in one run (issue 39):

    python -m lesa.bench hardware --model smollm2-135m

* a square matmul, fp32 and bf16 autocast (GFLOP/s);
* the model's forward pass (evaluation, inference mode) on batch x seq random tokens, fp32 and bf16 autocast;
* a training step (forward + backward, every weight trainable) on train_batch x train_seq tokens, fp32 and bf16,
  with both losses (autocast changes the numbers slightly, never the verdicts: tests/test_precision.py);
* the shared prefix (lesa.eval.shared_prefix) on a tiny slice: a grown model's full forward, the base model's shared
  bottom layers alone, and the grown model's forward from the cached prefix; the saving for M grown models
  measured together is M x full / (prefix + M x upper).

Every figure is the best of ``reps`` timings after one warm-up, fp32 and bf16 alternated, so a background job
slows both alike. Writes results/bench/hardware_<model>_<device>[_<host class>].json (on a CPU the class its bf16
flags put it in: amx, avx512bf16 or nobf16, one record each) with the CPU model and the flags that decide
`precision: auto` (lesa.core.precision).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..core.store import cpu_model, provenance, read_json, shown, write_json
from ..core.layout import Results
from ..core.models import load_model, weights_key
from ..core.precision import auto_reason, cpu_bf16_flags
from ..eval.protocol import measure, ppl_protocol
from ..eval.shared_prefix import SharedPrefix, prefix_hidden
from ..grow.expand import apply_plan
from ..grow.plans import build_plan
from ..grow.predictor import PredictorConfig
from ..study.profiles import load_profile

PRECS = ("fp32", "bf16")


def _amp(prec: str, device: str):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=prec == "bf16")


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def best_pair(fns: dict[str, Callable[[], Any]], reps: int, device: str) -> dict[str, float]:
    """Best wall-clock seconds of each fn over ``reps`` rounds after a warm-up, the fns alternated per round."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def matmul(size: int, reps: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device) for _ in range(2))

    def run(prec):
        with _amp(prec, device):
            return a @ b

    t = best_pair({p: (lambda p=p: run(p)) for p in PRECS}, reps, device)
    flop = 2 * size ** 3
    return {"size": size, **{f"{p}_gflops": flop / t[p] / 1e9 for p in PRECS}, "bf16_speedup": t["fp32"] / t["bf16"]}


def forward(model: Any, batch: int, seq: int, reps: int, device: str) -> dict:
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(1)).to(device)

    def run(prec):
        with torch.inference_mode(), _amp(prec, device):
            return model(input_ids=ids).logits

    t = best_pair({p: (lambda p=p: run(p)) for p in PRECS}, reps, device)
    return {"batch": batch, "seq": seq, **{f"{p}_s": t[p] for p in PRECS}, "bf16_speedup": t["fp32"] / t["bf16"]}


def train_step(model: Any, batch: int, seq: int, reps: int, device: str) -> dict:
    """Forward + backward of the loss with every weight trainable (fp32 weights, bf16 autocast or not);
    gradients are dropped after each step, no optimizer (its cost does not depend on the precision)."""
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(2)).to(device)
    model.train()
    losses = {}

    def run(prec):
        with _amp(prec, device):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        losses[prec] = float(loss.detach())

    try:
        t = best_pair({p: (lambda p=p: run(p)) for p in PRECS}, reps, device)
    finally:
        model.eval()
    return {"batch": batch, "seq": seq, **{f"{p}_s": t[p] for p in PRECS}, "bf16_speedup": t["fp32"] / t["bf16"],
            **{f"{p}_loss": losses[p] for p in PRECS}}


def shared_prefix_saving(model: Any, batch: int, seq: int, reps: int, device: str, method: str = "average",
                         models: int = 10) -> dict:
    """A grown model (``method``: a plan with LESA's layout and no predictor to train) on a tiny slice, per
    precision: its full forward, the base model's shared layers alone, and its forward from the cached prefix
    (outputs checked equal). ``models``: how many grown models share one prefix in the reported saving."""
    grown = apply_plan(model, build_plan(method, model.config.num_hidden_layers), copy_weights=False, progress=False)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(3)).to(device)
    mask = torch.ones_like(ids)
    out: dict = {"method": method, "batch": batch, "seq": seq, "models": models,
                 "layers": grown.config.num_hidden_layers}
    for prec in PRECS:
        shared = SharedPrefix(model)
        with torch.inference_mode(), _amp(prec, device):
            full = grown(input_ids=ids, attention_mask=mask).logits
            with shared.attach(grown) as depth:
                same = torch.equal(grown(input_ids=ids, attention_mask=mask).logits, full)
            out["shared_layers"] = depth

            def upper():
                with shared.attach(grown, depth):
                    return grown(input_ids=ids, attention_mask=mask).logits

            t = best_pair({"full": lambda: grown(input_ids=ids, attention_mask=mask).logits,
                           "prefix": lambda: prefix_hidden(model, depth, input_ids=ids, attention_mask=mask),
                           "upper": upper}, reps, device)
        out[prec] = {**{f"{k}_s": v for k, v in t.items()}, "bitwise_equal": same,
                     "saving": models * t["full"] / (t["prefix"] + models * t["upper"])}
    return out


def protocol_precision(model: Any, tok: Any, model_key: str, methods: tuple[str, ...] = ("base", "solar", "lesa"),
                       seed: int = 1, profile: str = "cpu", committed: Path | None = None) -> dict:
    """Notebook 3's screen (the profile's WikiText documents) in fp32 and bf16 for the base model and grown models
    (one growth per method, predictor ``seed``), beside the committed fp32 value (results/<profile>/03_expansion):
    {method: {fp32, bf16, bf16 relative difference, committed, here-fp32 relative to committed, seconds}}."""
    prof = load_profile(profile)
    E = prof["expansion"]
    base_proto = dataclasses.replace(ppl_protocol(prof), sets=tuple(E["screen"]["sets"]),
                                     limits=dict(E["screen"]["limits"]))
    path = committed or Results(profile).chapter("03_expansion") / "expansion.json"
    recorded = read_json(path)["models"].get(prof["model"]["name"], {}) if path.exists() else {}
    out = {"protocol": base_proto.sentence(), "seed": seed}
    for m in methods:
        grown = model if m == "base" else apply_plan(model, build_plan(m, model.config.num_hidden_layers),
                                                     PredictorConfig(seed=seed), copy_weights=False, progress=False,
                                                     cache_key=model_key)
        row = {}
        for prec in PRECS:
            t0 = time.perf_counter()
            r = measure(grown, tok, dataclasses.replace(base_proto, precision=prec))["wikitext"]
            row[prec], row[f"{prec}_s"] = r["value"], round(time.perf_counter() - t0, 1)
        row["bf16_relative"] = row["bf16"] / row["fp32"] - 1
        rec = (recorded.get("results", {}).get(m, {}).get("None" if m in ("base", "solar") else str(seed)) or {})
        row["committed_fp32"] = (rec.get("screen") or {}).get("wikitext", {}).get("value")
        if row["committed_fp32"]:
            row["here_fp32_relative_to_committed"] = row["fp32"] / row["committed_fp32"] - 1
        out[m] = row
        print(f"[bench] {m}: word ppl fp32 {row['fp32']:.4g} ({row['fp32_s']} s), bf16 {row['bf16']:.4g} "
              f"({row['bf16_s']} s; {100 * row['bf16_relative']:+.3f} %), committed fp32 {row['committed_fp32']}",
              flush=True)
    return out


def bench_hardware(model_name: str, *, device: str = "cpu", matmul_size: int = 2048, batch: int = 8, seq: int = 1024,
                   train_batch: int = 4, train_seq: int = 256, prefix_batch: int = 2, prefix_seq: int = 128,
                   reps: int = 3, out: Path | None = None, model: Any = None, ppl: bool = False) -> dict:
    """Every measurement above in one run; printed and written to ``out``. ``model``: an already loaded model
    (tests) instead of ``model_name``."""
    if model is None:
        model, _ = load_model(model_name, device=device)
    model = model.to(device).eval()
    threads = torch.get_num_threads()
    res = {"kind": "hardware", "label": Path(model_name).name, "device": device, "cpu_model": cpu_model(),
           "bf16_flags": cpu_bf16_flags(), "auto": "%s (%s)" % auto_reason(device),
           "torch_threads": threads}
    print(f"[bench] hardware: {res['cpu_model']}, {threads} threads, bf16 flags {res['bf16_flags'] or 'none'}; "
          f"precision auto -> {res['auto']}", flush=True)
    res["matmul"] = m = matmul(matmul_size, reps, device)
    print(f"[bench] matmul {matmul_size}²: fp32 {m['fp32_gflops']:.0f} GFLOP/s, bf16 {m['bf16_gflops']:.0f} "
          f"(x{m['bf16_speedup']:.2f})", flush=True)
    res["forward"] = f = forward(model, batch, seq, reps, device)
    print(f"[bench] forward {batch}x{seq}: fp32 {f['fp32_s']:.3f} s, bf16 {f['bf16_s']:.3f} s "
          f"(x{f['bf16_speedup']:.2f})", flush=True)
    res["train_step"] = s = train_step(model, train_batch, train_seq, reps, device)
    print(f"[bench] train step {train_batch}x{train_seq}: fp32 {s['fp32_s']:.3f} s, bf16 {s['bf16_s']:.3f} s "
          f"(x{s['bf16_speedup']:.2f}; loss {s['fp32_loss']:.4f} vs {s['bf16_loss']:.4f})", flush=True)
    res["shared_prefix"] = p = shared_prefix_saving(model, prefix_batch, prefix_seq, reps, device)
    for prec in PRECS:
        q = p[prec]
        print(f"[bench] shared prefix ({p['shared_layers']} of {p['layers']} layers, {prefix_batch}x{prefix_seq}, "
              f"{prec}): full {q['full_s']:.4f} s, prefix {q['prefix_s']:.4f} s, upper {q['upper_s']:.4f} s; "
              f"{p['models']} models x{q['saving']:.2f} faster, bitwise equal: {q['bitwise_equal']}", flush=True)
    if ppl:                                  # notebook 3's screen in both precisions (minutes: a LESA growth)
        full, tok = load_model(model_name, device=device)
        res["protocol_precision"] = protocol_precision(full, tok, weights_key(model_name))
    res["provenance"] = provenance()
    if out:
        write_json(out, res)
        print(f"[bench] wrote {shown(out)}")
    return res
