"""Training FLOPs with frozen layers, the expected step-cost ratio between runs, and peak FLOP/s.

FLOPs per token (layer l has N matmul parameters, d_att = H*Q, T = sequence length):
    trainable layer                          6*N + 12*T*d_att
    frozen layer above the lowest trainable  4*N + 12*T*d_att   (forward + input gradient, no weight gradient)
    frozen layer below the lowest trainable  2*N +  4*T*d_att   (forward only: backward stops there)
    LM head V x d                            6*V*d trained, 4*V*d frozen (2*V*d with nothing trainable)
    embedding lookup                         0
The lowest trainable layer is counted in full (6*N): its norm weights train, so the input-gradient
matmuls of q/k/v and gate/up still run (they feed the norm-weight gradients). With ``train_all`` the
embeddings train too, so every layer pays its input gradient (PaLM's 6N + 12*L*T*d_att). Recomputation
under activation checkpointing is not counted (that would be HFU, not MFU). A test checks these counts
against torch's FLOP counter on a real forward + backward.

MFU = tokens/s * FLOPs/token / (peak * GPUs), with the peak from PEAK_TFLOPS_BF16 (None on a CPU or an
unknown GPU: no meaningful published peak).
"""
from __future__ import annotations

from typing import Any

import torch

# Dense bf16 tensor-core peak per GPU (the datasheets' "with sparsity" figure halved), first substring
# match on torch.cuda.get_device_name(), most specific name first. (substring, TFLOP/s, source)
PEAK_TFLOPS_BF16: tuple[tuple[str, float, str], ...] = (
    ("H200 NVL", 835.5, "NVIDIA H200 datasheet (2024), H200 NVL: BF16 1,671 TFLOPS with sparsity"),
    ("H200", 989.5, "NVIDIA H200 datasheet (2024), H200 SXM: BF16 1,979 TFLOPS with sparsity"),
    ("H100 NVL", 835.5, "NVIDIA H100 datasheet (2023), H100 NVL: BF16 1,671 TFLOPS with sparsity"),
    ("H100 PCIe", 756.5, "NVIDIA H100 datasheet (2023), H100 PCIe: BF16 1,513 TFLOPS with sparsity"),
    ("H100", 989.5, "NVIDIA H100 datasheet (2023), H100 SXM: BF16 1,979 TFLOPS with sparsity"),
    ("A100", 312.0, "NVIDIA A100 datasheet (2021), SXM and PCIe: BF16 312 TFLOPS dense"),
    ("L40S", 362.05, "NVIDIA L40S datasheet (2023): BF16 362.05 TFLOPS dense"),
)


def peak_tflops(device: torch.device | str, precision: str = "bf16") -> tuple[float | None, str | None]:
    """(dense peak TFLOP/s of one device for this precision, its source), or (None, None) on a CPU,
    an unknown GPU or a precision the table does not cover (fp32 runs TF32/FP32 kernels)."""
    device = torch.device(device)
    if device.type != "cuda" or precision != "bf16":
        return None, None
    name = torch.cuda.get_device_name(device)
    return next(((v, src) for k, v, src in PEAK_TFLOPS_BF16 if k in name), (None, None))


def dims(config: Any) -> dict:
    """The shapes the FLOP count needs from a Hugging Face decoder config."""
    d = config.hidden_size
    H = config.num_attention_heads
    Q = getattr(config, "head_dim", None) or d // H
    KV = getattr(config, "num_key_value_heads", None) or H
    inter = config.intermediate_size
    return {"d": d, "H": H, "Q": Q, "KV": KV, "I": inter, "V": config.vocab_size,
            "L": config.num_hidden_layers, "d_att": H * Q,
            # q, k, v, o projections + gate, up, down (biases are not matmuls)
            "N_layer": d * H * Q + 2 * d * KV * Q + H * Q * d + 3 * d * inter}


def flops_per_token(model_or_config: Any, trainable_layers: list[int] | None, seq_len: int, *,
                    train_all: bool = False) -> dict:
    """Training FLOPs per token when only ``trainable_layers`` train (``train_all``: every weight,
    embeddings and LM head included). See the module docstring for the per-layer costs."""
    config = getattr(model_or_config, "config", model_or_config)
    k = dims(config)
    N, T, dat, L = k["N_layer"], seq_len, k["d_att"], k["L"]
    trainable = set(range(L)) if train_all else set(trainable_layers or [])
    lowest = -1 if train_all else (min(trainable) if trainable else L)
    per_layer = []
    for i in range(L):
        if i in trainable:
            per_layer.append(6 * N + 12 * T * dat)
        elif i > lowest:
            per_layer.append(4 * N + 12 * T * dat)
        else:
            per_layer.append(2 * N + 4 * T * dat)
    head_vd = k["V"] * k["d"]
    head = (6 if train_all else 4 if trainable else 2) * head_vd
    total = sum(per_layer) + head
    forward = L * (2 * N + 4 * T * dat) + 2 * head_vd
    n_train = len(trainable) * N + (head_vd if train_all else 0)
    return {"total": total, "forward": forward, "per_layer": per_layer, "lm_head": head,
            "lowest_trainable_layer": lowest, "naive_6N_trainable": 6 * n_train, "dims": k,
            "seq_len": T}


def expected_ratios(config: Any, runs: dict[str, tuple[list[int] | None, bool]], seq_len: int,
                    reference: str) -> dict[str, float]:
    """Step-cost ratio each run should have against ``reference`` by the FLOP model alone, from
    ``runs``: name -> (trainable layers, train_all). Same batch and sequence length, so the ratio of
    FLOPs per token is the ratio of step times a compute-bound trainer would show."""
    f = {n: flops_per_token(config, layers, seq_len, train_all=all_)["total"] for n, (layers, all_) in runs.items()}
    return {n: v / f[reference] for n, v in f.items()}


def read_store(summary: dict) -> bool:
    """Whether a CPT run's training steps read stored frozen-layer outputs (lesa.prefix_store)."""
    return bool((summary.get("prefix_reuse") or {}).get("train_batches_reused"))


def step_cost_ratios(summaries: dict[str, dict], reference: str) -> dict[str, dict]:
    """Measured s/step ratio beside the FLOP model's ratio, per run, against ``reference``.

    ``summaries``: name -> lesa.train.trainer summary (``step_s_median``, ``flops_per_token``, ``global_batch``,
    ``seq_len``). Runs with another batch or sequence length than the reference are skipped: their step
    times do not compare. A run whose training steps read the frozen-prefix store (lesa.prefix_store: its
    summary's ``prefix_reuse.train_batches_reused``), or a reference that did, has no measured ratio: its steps
    skipped layers the method computes, so their times are not its step cost."""
    if reference not in summaries:
        return {}
    ref = summaries[reference]
    shape = (ref.get("global_batch"), ref.get("seq_len"))
    out = {}
    for name, s in summaries.items():
        if (s.get("global_batch"), s.get("seq_len")) != shape:
            continue
        measured = s.get("step_s_median") / ref["step_s_median"] if s.get("step_s_median") and \
            ref.get("step_s_median") and not (read_store(s) or read_store(ref)) else None
        out[name] = {"step_s": s.get("step_s_median"), "flops_per_token": s.get("flops_per_token"),
                     "measured_ratio": measured,
                     "flop_model_ratio": s["flops_per_token"] / ref["flops_per_token"]}
    return out
