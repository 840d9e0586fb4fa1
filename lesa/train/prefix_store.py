"""CPT's frozen prefix computed once: the hidden states entering the lowest trained layer, kept on disk.

A run that trains only the new layers of a grown model never changes the embeddings and the layers under
its lowest trained layer L. For a given batch of token ids the hidden state entering layer L is therefore
the same at every step, in every epoch, after every resume, and in every other run whose bottom L layers
are the same tensors and that sees the same batch: LESA, LESA w/o SVD, the lesa_fp variants and every
predictor seed of them (all of them keep SmolLM2's layers 0-14 under their first new layer 15, a third of
the grown model's forward pass), and the held-out sets, evaluated every ``eval_every`` steps of every run.

    store = PrefixStore.for_run(model, report, cfg, precision, device, world)   # after freezing, before training
    with autocast(...), store.feeding(get_layers(model), x):                    # per micro-batch
        loss = loss_fn(model, x)        # a hit: layers 0..L-1 return the stored states; a miss: they run
                                        # and the states entering layer L are written for the next run

Exact, not approximate: a stored tensor is what the same model (same bottom tensors, checked by a
fingerprint of their bytes) computed for the same batch (same token ids in the same order and shape: a
batch of other sequences is another entry, since a kernel's arithmetic may depend on the batch's shape)
under the same autocast precision, device kind and torch / transformers versions, so everything above
layer L receives bitwise the same input as in the full computation (tests/test_prefix_store.py compares
losses and trained weights bit for bit, across an interruption). Only where that holds is it on by default
(``prefix_reuse: auto``): one process on a CPU, no dropout (a random prefix is not reusable), no
torch.compile, a frozen prefix of at least one layer. ``PREFIX_BYTES`` caps the store (nothing new is
written beyond it; what is stored keeps serving).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
import transformers

from ..core.store import atomic_write_bytes, cache_dir, shown, stable_hash
from ..eval.shared_prefix import GROWTH_KEYS, _Feed

MODES = ("auto", "on", "off")
PREFIX_BYTES = int(os.environ.get("LESA_PREFIX_GB", "20")) << 30     # the store's size on disk, at most
FORMAT = 1                                                           # bump when an entry's layout changes


def store_root() -> Path:
    """``$LESA_PREFIX_DIR`` (the tests' own folder), else .cache/prefix/."""
    env = os.environ.get("LESA_PREFIX_DIR")
    return Path(env) if env else cache_dir("prefix")


def batch_key(x: torch.Tensor) -> str:
    """Hash of a batch of token ids: dtype, shape and every id in order."""
    t = x.detach().contiguous().cpu()
    h = hashlib.blake2b(f"{t.dtype}|{tuple(t.shape)}".encode(), digest_size=16)
    h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def prefix_fingerprint(model: Any, depth: int, layers) -> str:
    """Hash of everything that makes the hidden states entering layer ``depth``: the config apart from the
    depth, the attention implementation, and the bytes of every tensor below the layers (embeddings, rotary
    buffers) and of layers 0..depth-1, names and dtypes included."""
    cfg = {k: v for k, v in model.config.to_dict().items() if k not in GROWTH_KEYS and k not in
           ("transformers_version", "torch_dtype", "dtype", "architectures")}
    types = getattr(model.config, "layer_types", None)
    h = hashlib.blake2b(digest_size=16)
    h.update(stable_hash({"config": cfg, "attn": getattr(model.config, "_attn_implementation", None),
                          "types": types[:depth] if types else None}, 32).encode())
    dec = model.get_decoder()
    below = [(n, t) for n, t in [*dec.named_parameters(), *dec.named_buffers()]
             if not n.startswith(("layers.", "norm."))]
    for i in range(depth):
        below += [(f"layers.{i}.{n}", t) for n, t in [*layers[i].named_parameters(), *layers[i].named_buffers()]]
    for name, t in below:
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def decide(model: Any, report: dict, mode: str, *, device: torch.device, world: int, compiled: bool) -> tuple[int, str]:
    """(depth of the reusable frozen prefix or 0, why). ``auto`` reuses only where the result is bitwise the
    full computation's; ``on`` insists (an error says what prevents it); ``off`` never reuses."""
    if mode not in MODES:
        raise ValueError(f"prefix_reuse must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return 0, "off (prefix_reuse: off)"
    depth = report.get("lowest_trainable_layer", -1)
    dropout = {k: v for k, v in model.config.to_dict().items() if "dropout" in k and isinstance(v, (int, float)) and v}
    blockers = [
        (depth < 1, "nothing frozen below the lowest trained layer" if depth == 0 else "every weight trains"),
        (world > 1, f"{world} processes (each would need its own store; not exact under FSDP's sharded layers)"),
        (device.type != "cpu", f"device {device.type} (forward kernels not known to be deterministic there)"),
        (bool(dropout), f"dropout {dropout} (a random prefix cannot be reused)"),
        (compiled, "torch.compile (compiled and eager layers round differently)"),
    ]
    why = [w for bad, w in blockers if bad]
    if why:
        if mode == "on":
            raise ValueError("prefix_reuse: on, but the frozen prefix cannot be reused exactly here: " + "; ".join(why)
                             + ". Use prefix_reuse: auto or off")
        return 0, "not used: " + "; ".join(why)
    return depth, f"layers 0-{depth - 1} and the embeddings frozen: their output is computed once per batch"


class PrefixStore:
    """The on-disk store of one frozen prefix: one file per batch of token ids, under
    ``store_root() / key``. ``hits`` / ``misses`` / ``written`` count this process's batches."""

    def __init__(self, depth: int, why: str, key: str | None = None, root: Path | None = None):
        self.depth, self.why, self.key = depth, why, key
        self.dir = (root or store_root()) / key if key else None
        self.hits = self.misses = self.written = self.train_hits = 0
        self._bytes: int | None = None              # the store's size on disk, counted once, then kept up to date

    @classmethod
    def for_run(cls, model: Any, layers, report: dict, mode: str, precision: str, *, device: torch.device,
                world: int, compiled: bool) -> "PrefixStore":
        """The store of a run's model, prepared (frozen weights in their final dtype) but before training."""
        depth, why = decide(model, report, mode, device=device, world=world, compiled=compiled)
        if not depth:
            return cls(0, why)
        below = [p for i in range(depth) for p in layers[i].parameters()]
        below += [p for n, p in model.get_decoder().named_parameters() if not n.startswith(("layers.", "norm."))]
        if any(p.requires_grad for p in below):    # freeze_for_growth and this module disagree: never reuse then
            raise RuntimeError(f"parameters under layer {depth} require grad: the prefix is not frozen")
        key = stable_hash({"format": FORMAT, "weights": prefix_fingerprint(model, depth, layers), "depth": depth,
                           "precision": precision, "device": device.type, "torch": torch.__version__,
                           "transformers": transformers.__version__}, 24)
        return cls(depth, why, key)

    def summary(self) -> dict:
        """What the run's summary records."""
        return {"used": bool(self.depth), "why": self.why, "depth": self.depth, "store": shown(self.dir) if self.dir else None,
                "batches_reused": self.hits, "batches_computed": self.misses, "batches_written": self.written,
                # training steps that read the store are cheaper than the method's own step: its step times are
                # then not its step cost (C6 is measured by lesa.step_cost, which turns the store off)
                "train_batches_reused": self.train_hits}

    def _size(self) -> int:
        if self._bytes is None:
            self._bytes = sum(p.stat().st_size for p in self.dir.glob("*.pt")) if self.dir.exists() else 0
        return self._bytes

    @contextlib.contextmanager
    def feeding(self, layers, x: torch.Tensor):
        """One forward of the model on token ids ``x``: with the stored prefix for ``x`` its bottom ``depth``
        layers return it instead of running; without it they run and what enters layer ``depth`` is stored."""
        if not self.depth:
            yield
            return
        # train or eval mode in the name: identical for the dropout-free models reused here, but a layer may
        # branch on self.training, and exactness should not rest on that
        mode = "train" if layers[self.depth].training else "eval"
        path = self.dir / f"{batch_key(x)}-{mode}.pt"
        if path.exists():
            h = torch.load(path, map_location=x.device, weights_only=True)
            saved = [layers[i] for i in range(self.depth)]
            for i in range(self.depth):
                layers[i] = _Feed(saved[i], h)
            self.hits += 1
            self.train_hits += mode == "train"
            try:
                yield
            finally:
                for i in range(self.depth):
                    layers[i] = saved[i]
            return
        got = {}

        def grab(_mod, args, kwargs):
            if "h" not in got:                      # the first call: a checkpointed layer's recompute calls again
                got["h"] = args[0] if args else kwargs["hidden_states"]

        handle = layers[self.depth].register_forward_pre_hook(grab, with_kwargs=True)
        self.misses += 1
        try:
            yield
        finally:
            handle.remove()
        h = got.get("h")
        if h is None or h.requires_grad:
            raise RuntimeError(f"the hidden state entering layer {self.depth} was not seen or requires grad: "
                               "the prefix is not frozen, or the model skipped its layers")
        if self._size() + h.numel() * h.element_size() <= PREFIX_BYTES:
            buf = io.BytesIO()
            torch.save(h.detach().cpu().clone(), buf)       # clone: only this tensor's bytes, not a larger storage
            atomic_write_bytes(path, buf.getvalue())
            self.written += 1
            self._bytes += buf.tell()

