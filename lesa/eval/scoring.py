"""Scoring text with a model: the precision (fp32 or bf16 autocast, refused early where bf16 is emulated),
rolling windows over a token stream, and batched log-likelihoods of continuations; perplexity and the
prefix-sharing lm-eval model both score through here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core.precision import resolve_precision
from .. import PROJECT_ROOT


# Logits (rows x vocabulary) computed at once when scoring: 2**26 fp32 = 256 MB, i.e. 1365 rows of
# SmolLM2's 49k vocabulary (its 1k-token windows are one chunk) or 256 rows of Gemma 3's 262k.
MAX_LOGITS = 2 ** 26


def bf16_supported(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively: CUDA with bf16, or a CPU that
    oneDNN runs bf16 on (AVX-512 or AMX). Elsewhere torch emulates bf16, which is slower than fp32
    (on a 2-core AVX2 EPYC: 4.7 vs 20.7 GFLOP/s for a SmolLM2-sized linear layer)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if dev.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def check_precision(precision: str, device: str | torch.device) -> str:
    """The concrete precision ("fp32" | "bf16") a request runs in on ``device``: "auto" resolved by the
    hardware (lesa.core.precision), with a clear early error for an unknown value or bf16 forced on a device
    without native bf16. Callers record and key on the returned value, never on "auto"."""
    precision = resolve_precision(precision, device)
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"precision='bf16' was requested on {device}, which has no native bfloat16 matrix "
                         "units (CPU without AVX-512/AMX, or a GPU without bf16): torch would emulate it, slower "
                         "than fp32. Use precision='fp32', or 'auto' to let the hardware decide "
                         "(protocol.precision in the profile).")
    return precision


def precision_context(precision: str, device: str | torch.device):
    """Autocast for evaluation: "bf16" runs matrix products in bfloat16 while the weights stay as
    loaded; "fp32" changes nothing. Log-softmax is always taken in float32 by the callers."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _model_info(model: torch.nn.Module) -> dict:
    cfg = model.config
    return {"class": type(model).__name__, "name_or_path": Path(str(getattr(cfg, "_name_or_path", ""))).name,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "n_layers": getattr(cfg, "num_hidden_layers", None),
            "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
            "device": str(next(model.parameters()).device)}


def default_max_length(model: torch.nn.Module, tokenizer: Any) -> int:
    """The context length lm-eval's HFLM would use (model config, then tokenizer, then 2048)."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        v = getattr(model.config, attr, None)
        if v:
            return int(v)
    v = getattr(tokenizer, "model_max_length", None)
    return int(v) if v and v < 1e9 else 2048


def prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's prefix token for the first rolling window: BOS, or EOS when there is no BOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> list[tuple[list[int], list[int]]]:
    """lm-eval's get_rolling_token_windows(context_len=1) + make_disjoint_window: (context, targets).

    Windows predict disjoint spans of up to `max_len` tokens; the first is conditioned on `prefix`,
    later ones on the `max_len` tokens before their last target (so the last window keeps context).
    """
    out = []
    if not tokens:
        return out
    first = min(max_len, len(tokens))
    out.append(([prefix], tokens[:first]))
    done = first
    while done < len(tokens):
        n = min(len(tokens) - done, max_len)
        end = done + n
        ctx = tokens[max(end - max_len - 1, 0):end - 1]
        out.append((ctx[:len(ctx) - (n - 1)], tokens[end - n:end]))
        done = end
    return out


@torch.inference_mode()
def score_continuations(model: torch.nn.Module, items: list[tuple[list[int], list[int]]], *,
                        max_length: int, batch_size: int = 8, desc: str = "score",
                        progress: bool = True, max_logits: int = MAX_LOGITS,
                        precision: str = "fp32") -> list[tuple[float, bool]]:
    """Sum log p(continuation | context) and greedy-match for each (context, continuation) pair.

    As lm-eval: the sequence (context + continuation) keeps its last max_length + 1 tokens; the
    model sees all but the last. Batched by length (right-padded), log-softmax in float32 on the
    continuation positions only, so a 49k vocabulary never materialises (B, T, V) logits; those
    positions go through the head in chunks of at most ``max_logits`` logits (Gemma's 262k vocabulary
    would otherwise take 1 GB per 1k-token window, twice with the log-softmax).
    precision: "fp32" or "bf16" (autocast; see precision_context).
    """
    device = next(model.parameters()).device
    precision = check_precision(precision, device)
    amp = lambda: precision_context(precision, device)
    seqs = [(ctx + cont)[-(max_length + 1):] for ctx, cont in items]
    order = sorted(range(len(items)), key=lambda i: -len(seqs[i]))
    results: list[tuple[float, bool]] = [(0.0, False)] * len(items)
    base, head = getattr(model, "base_model", None), model.get_output_embeddings()
    # hidden states @ head equals the model's logits unless the model post-processes them (Gemma 2's
    # final logit soft-capping): then the full logits are taken from the model.
    use_hidden = (base is not None and base is not model and head is not None
                  and getattr(model.config, "final_logit_softcapping", None) is None)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", disable=not progress,
                      leave=False):
        idx = order[start:start + batch_size]
        T = len(seqs[idx[0]]) - 1
        inp = torch.zeros((len(idx), T), dtype=torch.long)                     # (B, T) right-padded
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for b, i in enumerate(idx):
            s = seqs[i][:-1]
            inp[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = 1
        inp, mask = inp.to(device), mask.to(device)
        with amp():
            if use_hidden:
                hidden = base(input_ids=inp, attention_mask=mask).last_hidden_state  # (B, T, H)
            else:
                logits_all = model(input_ids=inp, attention_mask=mask).logits      # (B, T, V)
        for b, i in enumerate(idx):
            n_in, n_cont = len(seqs[i]) - 1, len(items[i][1])
            pos = torch.arange(n_in - n_cont, n_in, device=device)             # (C,) positions
            target = torch.tensor(seqs[i][-n_cont:], device=device)
            vocab = head.weight.shape[0] if use_hidden else logits_all.shape[-1]
            rows = max(1, max_logits // vocab)
            ll, greedy = 0.0, True
            for c in range(0, n_cont, rows):                                   # one chunk unless C*V > max_logits
                p = pos[c:c + rows]
                with amp():
                    logits = head(hidden[b, p]) if use_hidden else logits_all[b, p]   # (c, V)
                logp = F.log_softmax(logits.float(), dim=-1)
                ll += logp.gather(-1, target[c:c + rows, None]).sum().item()
                greedy = greedy and bool((logp.argmax(-1) == target[c:c + rows]).all())
            results[i] = (ll, greedy)
    return results


def _relative(path: Path) -> str:
    """A path for records: relative to the checkout when inside it (no absolute paths committed)."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return Path(path).name


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    return rows[:limit] if limit else rows
