"""The one perplexity protocol of a profile (its `protocol` section): every notebook measures every
model, the unexpanded base model included, with these settings and says so in one sentence.

    proto = ppl_protocol(prof)              # PplProtocol
    proto.sentence()                        # one line for the page
    measure(model, tok, proto)              # {set: record}, perplexity_suite below
    proto.mismatch(record)                  # why a stored record was not measured this way (or None)
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.codekey import code_key
from .. import PROJECT_ROOT
from ..core.precision import resolve_precision
from ..core.store import cache_dir, read_json, stable_hash, write_json
from ..data.prepare import DataError, benchmark_dir, latest_corpus
from .scoring import check_precision

PRECISIONS = ("fp32", "bf16", "auto")   # as lesa.core.precision.PRECISIONS (not imported: this module stays light)
SET_TEXT = {"wikitext": "WikiText-2 test ({n}; word perplexity, rolling windows)",
            "heldout": "held-out CPT text ({n} per source; token perplexity)",
            "lambada": "LAMBADA-OpenAI ({n}; last-word perplexity)",
            "fixture": "the fixed WikiText excerpt in tests/fixtures ({n}; token perplexity)",
            "code": "Python source from CPython's standard library in data/code ({n}; token perplexity)"}
SET_UNIT = {"wikitext": "documents", "heldout": "sequences", "lambada": "passages", "fixture": "text",
            "code": "files"}
SET_SIZE = {"wikitext": 62}       # lm-eval's wikitext test split
FIXTURE_TEXT = PROJECT_ROOT / "tests" / "fixtures" / "wikitext_excerpt.txt"
CODE_DIR = PROJECT_ROOT / "data" / "code"      # the code perplexity set (ours): CPython stdlib modules, PSF licence
CODE_FILES = ("bisect.py", "colorsys.py", "graphlib.py", "heapq.py")   # in this order; a limit takes the first N


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class PplProtocol:
    sets: tuple[str, ...]                 # perplexity sets, in the order pages show them
    limits: dict = field(default_factory=dict)   # set -> first N items (None = the whole set)
    max_length: int = 1024                # tokens per window
    precision: str = "fp32"               # fp32 | bf16 (autocast in lesa.eval.evaluate) | auto (resolved at once)
    batch_size: int = 2

    def __post_init__(self):
        bad = [s for s in self.sets if s not in SET_TEXT]
        if bad:
            raise ProtocolError(f"protocol.sets has unknown sets {bad}; known: {list(SET_TEXT)}")
        if self.precision not in PRECISIONS:
            raise ProtocolError(f"protocol.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.precision == "auto":          # decided here, once: sentence, key and records hold fp32 or bf16
            object.__setattr__(self, "precision", resolve_precision("auto"))
        if not isinstance(self.max_length, int) or self.max_length < 8:
            raise ProtocolError(f"protocol.max_length must be an integer >= 8, got {self.max_length!r}")
        for s, n in self.limits.items():
            if n is not None and (not isinstance(n, int) or n < 1):
                raise ProtocolError(f"protocol.limits.{s} must be a positive integer or null (whole set), got {n!r}")

    def limit(self, name: str) -> int | None:
        return self.limits.get(name)

    def size_text(self, name: str) -> str:
        n = self.limit(name)
        if name == "fixture":
            return "all of it"
        if n is None:
            return f"all {SET_SIZE[name]} {SET_UNIT[name]}" if name in SET_SIZE else f"all {SET_UNIT[name]}"
        return f"first {n} {SET_UNIT[name]}"

    def sentence(self) -> str:
        """The protocol in one sentence, for the page."""
        sets = "; ".join(SET_TEXT[s].format(n=self.size_text(s)) for s in self.sets)
        return (f"Perplexity protocol (profile `protocol` section, the same for every model and notebook): "
                f"{self.precision}, windows of {self.max_length} tokens; sets: {sets}.")

    def key(self) -> dict:
        return asdict(self)

    def evaluate_kwargs(self) -> dict:
        """Keyword arguments for lesa.eval.evaluate.perplexity."""
        return {"max_length": self.max_length, "batch_size": self.batch_size, "precision": self.precision}

    def mismatch(self, record: dict) -> str | None:
        """None when a stored lesa.eval.evaluate record (task ppl_<set>) was measured under this protocol,
        else what differs (window length or number of items)."""
        name = str(record.get("task", "")).removeprefix("ppl_")
        if name not in self.sets:
            return f"set {name!r} is not in the protocol"
        diffs = []
        if record.get("max_length") not in (None, self.max_length):
            diffs.append(f"windows of {record['max_length']} tokens (protocol {self.max_length})")
        if record.get("limit") != self.limit(name):
            diffs.append(f"limit {record.get('limit')} (protocol {self.limit(name)})")
        rp = record.get("precision")
        if rp is not None and rp != self.precision:
            diffs.append(f"precision {rp} (protocol {self.precision})")
        return "; ".join(diffs) or None


def ppl_protocol(prof: dict) -> PplProtocol:
    """The profile's protocol section as a PplProtocol (clear error when it is missing)."""
    p = prof.get("protocol")
    if not isinstance(p, dict):
        raise ProtocolError(f"profile {prof.get('name')!r} has no `protocol` section (sets, limits, max_length, "
                            "precision, batch_size); see configs/cpu.yaml")
    return PplProtocol(sets=tuple(p["sets"]), limits=dict(p.get("limits") or {}), max_length=int(p["max_length"]),
                       precision=p.get("precision", "fp32"), batch_size=int(p.get("batch_size", 2)))


def measure(model: Any, tokenizer: Any, proto: PplProtocol) -> dict:
    """{set: record} for every set of the protocol (a set whose data is missing gets status 'missing')."""
    return perplexity_suite(model, tokenizer, list(proto.sets), proto.limits, proto.max_length,
                            batch_size=proto.batch_size, precision=proto.precision)


# ------------------------------------------------------------------ the measurement (torch imported when run)
def text_perplexity(model: Any, tokenizer: Any, text: str, max_length: int) -> dict:
    """Token perplexity of a text in disjoint windows of max_length tokens (no data files needed)."""
    import torch

    ids = tokenizer.encode(text)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    nll, n = 0.0, 0
    for s in range(0, len(ids), max_length):
        chunk = [bos] + ids[s:s + max_length]
        x = torch.tensor([chunk])
        with torch.no_grad():
            logits = model(input_ids=x).logits[0, :-1].float()
        nll += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
        n += len(chunk) - 1
    return {"task": "ppl_fixture", "metrics": {"token_perplexity": math.exp(nll / n)},
            "primary_metric": "token_perplexity", "value": math.exp(nll / n), "n_tokens": n,
            "data": str(FIXTURE_TEXT.relative_to(PROJECT_ROOT))}


def code_perplexity(model: Any, tokenizer: Any, limit: int | None, max_length: int) -> dict:
    """Token perplexity over the first ``limit`` files of the code set (every file: None), each file in
    disjoint windows of max_length tokens (text_perplexity), pooled over all tokens."""
    files = CODE_FILES[:limit] if limit else CODE_FILES
    nll, n = 0.0, 0
    for f in files:
        r = text_perplexity(model, tokenizer, (CODE_DIR / f).read_text(encoding="utf-8"), max_length)
        nll += math.log(r["value"]) * r["n_tokens"]
        n += r["n_tokens"]
    return {"task": "ppl_code", "metrics": {"token_perplexity": math.exp(nll / n)}, "primary_metric": "token_perplexity",
            "value": math.exp(nll / n), "n_tokens": n, "files": list(files),
            "data": str(CODE_DIR.relative_to(PROJECT_ROOT))}


def perplexity_suite(model: Any, tokenizer: Any, sets: list[str], limits: dict, max_length: int,
                     batch_size: int = 2, precision: str = "fp32") -> dict:
    """{set: record} for 'fixture' and 'code' (always available) and lesa.eval.evaluate's wikitext / lambada /
    heldout; a set whose data is not prepared gets {'status': 'missing', 'reason': ...}.
    Call it through lesa.eval.protocol.measure (one protocol for every notebook). precision: lesa.eval.evaluate's
    ("fp32" | "bf16", the protocol's); the fixture and code sets are always fp32."""
    precision = check_precision(precision, next(model.parameters()).device)
    out: dict = {}
    for name in sets:
        t0 = time.perf_counter()
        try:
            if name == "fixture":
                rec = text_perplexity(model, tokenizer, FIXTURE_TEXT.read_text(encoding="utf-8"), max_length)
            elif name == "code":
                rec = code_perplexity(model, tokenizer, limits.get(name), max_length)
            else:
                from .evaluate import perplexity

                rec = perplexity(model, tokenizer, name, max_length=max_length, limit=limits.get(name),
                                 batch_size=batch_size, progress=False, precision=precision)
            rec["status"] = "ok"
            if name == "lambada":            # report its perplexity as the set's headline number
                rec["acc"] = rec["metrics"].get("acc")
                rec["value"] = rec["metrics"]["perplexity"]
                rec["primary_metric"] = "perplexity"
        except (FileNotFoundError, OSError, RuntimeError, KeyError) as e:
            rec = {"status": "missing", "reason": f"{type(e).__name__}: {e}"[:300]}
        rec["limit"] = limits.get(name)
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = rec
    return out


def headline(sets: list[str] | tuple[str, ...]) -> str | None:
    """The set that initialisation verdicts are judged on: WikiText (the whole test set in the cpu and gpu
    profiles), else held-out CPT text, else the fixture."""
    return next((s for s in ("wikitext", "heldout", "fixture", "lambada") if s in sets), None)


def weights_fingerprint(model: Any) -> str:
    """Hash of every parameter and buffer (names, dtypes, shapes and bytes, in state-dict order): two models
    with this fingerprint compute the same function. About a second per GB of weights."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def measure_cached(model: Any, tokenizer: Any, proto: PplProtocol, model_key: str, name: str = "",
                   growth: Any = None) -> dict:
    """measure(), cached under .cache/analysis/ppl_protocol/ by (source model and tokenizer, the weights'
    fingerprint, protocol, the measurement code): a measurement is reused whenever the same weights are
    measured the same way, whatever code grew them or whatever the model is called (notebooks 3 and 5 share
    the base model's numbers; a refactor of the growth code does not redo hours of the whole WikiText set).
    ``name`` and ``growth`` are kept for the callers' records; they do not enter the key."""
    key = {"model": model_key, "weights": weights_fingerprint(model), "protocol": proto.key(), "data": _data_key(),
           "code": code_key(measure)}         # the code a perplexity runs through (lesa.core.codekey)
    path = cache_dir("analysis", "ppl_protocol") / f"{stable_hash(key)}.json"
    if path.exists():
        return read_json(path)
    out = measure(model, tokenizer, proto)
    write_json(path, out)
    return out


def _data_key() -> list:
    """The prepared data a measurement reads (benchmark and corpus folders are named by their content's
    hash); None where not prepared yet (the measurement then records the set as missing)."""
    out = []
    for f in (benchmark_dir, latest_corpus):
        try:
            out.append(f().name)
        except (DataError, OSError, ImportError):
            out.append(None)
    return out
