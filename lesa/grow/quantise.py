"""The quantisation control of the scale ladder (ours): every real model here reached us quantised to 4-8 bits
per weight (GGUF blocks), so a statistic that quantisation moves could be an artefact of it. Quantising the
de-quantised weights once more, with the same block type per tensor (the gguf package's own quantisers), and
measuring again bounds how far one more round of quantisation moves each statistic.

    model2, report = requantise(model, "smollm2-135m")    # a copy; report: block type and change per tensor
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..core.arch import check_model, get_layers
from ..core.models import REGISTRY, gguf_files

# lesa.core.arch's short weight names -> the GGUF tensor names of a layer (llama.cpp's naming, blk.<i>.<name>.weight)
GGUF_NAMES = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
              "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}


def gguf_block_types(name: str) -> dict[str, Any]:
    """GGUF tensor name -> its quantisation type, read from a short name's bundled single-file GGUF."""
    from gguf import GGUFReader

    if "parts" in REGISTRY.get(name, {}):
        raise ValueError(f"{name!r} is a chunked GGUF; the quantisation control reads a single-file GGUF "
                         f"(e.g. smollm2-135m)")
    return {t.name: t.tensor_type for t in GGUFReader(gguf_files(name)[0]).tensors}


def requantise(model: Any, name: str, shift: int | None = None) -> tuple[Any, dict]:
    """A copy of ``model`` whose layer projections are quantised and de-quantised once more with the block type
    the GGUF of short name ``name`` stores each of them in. Report: {block types used: count, the relative
    Frobenius change of the weights (median, max over tensors)}.

    Quantising again on the same blocks changes nothing (the values already lie on each block's grid: tested),
    so by default the blocks are shifted by half a block along each row (``shift``; 0: the same blocks): the
    second quantisation then adds an error of the first one's size, the round of quantisation whose effect we
    want to bound."""
    from gguf import GGML_QUANT_SIZES
    from gguf.quants import dequantize, quantize

    types = gguf_block_types(name)
    spec = check_model(model)
    out = copy.deepcopy(model)
    changes, used = [], {}
    with torch.no_grad():
        for i, layer in enumerate(get_layers(out, spec)):
            for short, path in spec.projections.items():
                qtype = types[f"blk.{i}.{GGUF_NAMES[short]}.weight"]
                w = layer.get_submodule(path).weight
                block = GGML_QUANT_SIZES[qtype][0]
                k = block // 2 if shift is None else shift
                x = np.roll(w.detach().float().numpy(), -k, axis=1)           # rows straddle the stored blocks
                try:
                    q = np.roll(dequantize(quantize(x, qtype), qtype).reshape(x.shape), k, axis=1)
                except NotImplementedError:
                    raise ValueError(f"the gguf package cannot quantise to {qtype.name} (blk.{i}.{GGUF_NAMES[short]}); "
                                     "the control needs a model stored in a type it can (Q4_0/1, Q5_0/1, Q8_0)") from None
                new = torch.from_numpy(np.ascontiguousarray(q)).reshape(w.shape).to(w.dtype)
                changes.append(float((new - w).norm() / w.norm()))
                used[qtype.name] = used.get(qtype.name, 0) + 1
                w.copy_(new)
    return out, {"block_types": used, "tensors": len(changes), "shift": "half a block" if shift is None else shift,
                 "relative_change": {"median": float(np.median(changes)), "max": float(max(changes))}}
