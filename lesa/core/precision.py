"""`precision: auto`: bf16 autocast where the hardware computes bf16 natively and it is faster, fp32 elsewhere.

Hosts differ by an order of magnitude either way: on an AMX Xeon a 2048² bf16 matmul runs 7.7x faster than
fp32 (SmolLM2-135M evaluation 2.7x, a training step 1.8x), on an AVX2-only EPYC torch emulates bf16 and
it is ~24x *slower*. So `auto` asks the hardware twice:

1. does it have bf16 matrix units: CPU flags ``amx_bf16`` or ``avx512_bf16`` (/proc/cpuinfo), or a CUDA
   GPU with native bf16 (compute capability 8.0+);
2. on a CPU, a probe (a few 1024² matmuls, well under a second, once per process) confirms bf16 beats fp32
   by PROBE_MARGIN (a CPU may have the flag yet a torch build whose oneDNN does not use it).

    resolve_precision("auto", "cpu")     # -> "bf16" or "fp32", decided once per process and device kind
    resolve_precision("fp32", "cpu")     # -> "fp32" (fp32 / bf16 are forced, never probed)

Resolve early, then record and key caches on the resolved value, never on "auto": a result must say the
precision it ran in, and a bf16 result must not be reused for an fp32 request on another host.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "auto")   # what a profile, TrainConfig or caller may ask for
RESOLVED = ("fp32", "bf16")             # what a result records
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
PROBE_MARGIN = 1.1                       # bf16 must be this much faster than fp32 for auto to pick it
PROBE_SIZE = 1024
_PROBES: dict[str, dict] = {}            # device kind -> probe result, once per process


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere, where auto then stays fp32)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_flags() -> list[str]:
    """This CPU's bf16 flags (amx_bf16, avx512_bf16), sorted: what a record says of the host class it ran on.
    (auto_reason spells the same expression out: it is hashed into the perplexity cache's key, and a change
    there would recompute every cached perplexity.)"""
    return sorted(cpu_flags() & set(BF16_FLAGS))


def host_class(units: list[str] | None) -> str | None:
    """The bf16 host class a run's CPU flags put it in (the speed-ups differ by class): AMX tiles, AVX512-BF16
    vector instructions only, or neither (bf16 emulated); None where the run did not record its flags."""
    if units is None:
        return None
    return "amx" if "amx_bf16" in units else "avx512bf16" if "avx512_bf16" in units else "nobf16"


HOST_WORDS = {"amx": "a host with AMX", "avx512bf16": "a host with AVX512-BF16 and no AMX",
              "nobf16": "a host without bf16 units"}


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` has bf16 matrix units: AMX or AVX512-BF16 on a CPU, bf16 tensor cores on CUDA."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if dev.type == "cpu":
        return bool(cpu_flags() & set(BF16_FLAGS))
    return False


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_probe(device: str | torch.device = "cpu") -> dict:
    """fp32 and bf16-autocast time of a few PROBE_SIZE² matmuls on ``device`` (best of 3 after a warm-up),
    and their ratio; measured once per process and device kind."""
    kind = torch.device(device).type
    if kind in _PROBES:
        return _PROBES[kind]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen).to(kind)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen).to(kind)

    def best(bf16: bool) -> float:
        times = []
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            for rep in range(4):
                if kind == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(2):
                    a @ b
                if kind == "cuda":
                    torch.cuda.synchronize()
                if rep:                                   # the first is a warm-up (oneDNN picks its kernels)
                    times.append(time.perf_counter() - t0)
        return min(times)

    fp32, bf16 = best(False), best(True)
    _PROBES[kind] = {"fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16}
    return _PROBES[kind]


def auto_reason(device: str | torch.device | None = None) -> tuple[str, str]:
    """(resolved precision, why) for ``auto`` on ``device`` (default: CUDA if present, else the CPU)."""
    device = torch.device(device or default_device())
    if not native_bf16(device):
        what = "no bf16 matrix units (CPU flags amx_bf16/avx512_bf16 absent)" if device.type == "cpu" \
            else f"{device} has no native bf16"
        return "fp32", what
    if device.type == "cuda":
        return "bf16", "GPU with native bf16"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:    # every process must decide alike: no timing noise
        return "bf16", "CPU flags " + "/".join(sorted(cpu_flags() & set(BF16_FLAGS))) + " (several processes: no probe)"
    p = bf16_probe(device)
    flags = "/".join(sorted(cpu_flags() & set(BF16_FLAGS)))
    if p["speedup"] >= PROBE_MARGIN:
        return "bf16", f"CPU flags {flags}, probe: bf16 matmul {p['speedup']:.1f}x faster than fp32"
    return "fp32", f"CPU flags {flags}, but probe: bf16 matmul only {p['speedup']:.2f}x fp32's speed"


def resolve_precision(precision: str, device: str | torch.device | None = None) -> str:
    """The concrete precision ("fp32" or "bf16") a request runs in: fp32/bf16 as given, auto decided
    by the hardware (auto_reason). Unknown values fail with the allowed ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return auto_reason(device)[0] if precision == "auto" else precision
