"""The Verdict a claim's rule returns, its Markdown/JSON forms, the statistics the rules share (seed
spreads, z-scores, paired CPT windows) and the ways verdicts of several models combine into one."""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from ..core.models import profile_label
from .paper import CLAIMS, fmt, source_text

# The verdicts a claim can get, the one list of them, in the scoreboard's order (met, undecided, not met, not
# measured). A verdict record names it `verdict`, in the dataclass and in JSON alike.
VERDICTS = ("reproduced", "inconclusive", "not reproduced", "not testable offline", "not yet run")
SE_MULT = 2.0            # a difference within SE_MULT standard errors is not called

# What a verdict attributes (issue 37): the status says whether the claim's literal criterion was met; the
# reading says what that supports. One fixed set, defined here once and shown on the scoreboard; the claim
# rules (lesa.claims.rules) assign it, and a status without a rule of its own gets DEFAULT_READING's.
READINGS = {
    "holds as worded": "the claim's criterion is met and no control we ran meets it too",
    "holds, from placement": "the criterion is met, but a control with LESA's placement and another "
                             "initialisation meets it as well: the effect comes from where the new layers sit, "
                             "not from the learned initialisation",
    "uninformative": "the literal criterion is met, but a control that learns nothing (or skips the step the claim "
                     "credits) meets it too",
    "refuted at this scale": "clearly reversed at this model size and budget, beyond the noise we measure",
    "not reached at this budget": "not met within our training budget, which is far shorter than the paper's; "
                                  "more tokens could change it",
    "inconclusive": "the seeds or the noise do not decide it (too few seeds on a side, or ranges that overlap)",
    "not tested": "not measured: not testable offline, or not yet run",
}
DEFAULT_READING = {"reproduced": "holds as worded", "not reproduced": "refuted at this scale",
                   "inconclusive": "inconclusive", "not testable offline": "not tested", "not yet run": "not tested"}
# the readings a status allows (a rule cannot read a failed criterion as holding, nor a met one as refuted)
READINGS_OF = {"reproduced": ("holds as worded", "holds, from placement", "uninformative"),
               "not reproduced": ("refuted at this scale", "not reached at this budget"),
               "inconclusive": ("inconclusive",), "not testable offline": ("not tested",), "not yet run": ("not tested",)}


# ------------------------------------------------------------------------------ verdicts
@dataclass
class Verdict:
    """One claim's verdict. ``verdict``: one of VERDICTS, named so in the JSON record and on the scoreboard."""
    claim: str
    verdict: str
    ours: str                                     # one line: what we measured
    rule: str                                     # how the status was decided
    budget: dict = field(default_factory=dict)    # steps, tokens, questions, seeds, ...
    uncertainty: dict = field(default_factory=dict)   # seed ranges, standard errors, z-scores
    notes: str = ""                               # what a reader must know beside the status
    evidence: str = ""                            # figures / files of the notebook
    per_model: dict = field(default_factory=dict)  # model -> one line (status: what we measured), per-model claims
    source_profile: str = ""                      # the profile whose results decided it, when not the notebook's
                                                  # source (C4 from cpu-long's LESA and LLaMA Pro before the rest)
    reading: str = ""                             # what the verdict attributes (READINGS); "" = the status's default

    def __post_init__(self):
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}; known: {list(CLAIMS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict (status) must be one of {VERDICTS}, got {self.verdict!r}")
        self.reading = self.reading or DEFAULT_READING[self.verdict]
        if self.reading not in READINGS_OF[self.verdict]:
            raise ValueError(f"reading {self.reading!r} does not fit status {self.verdict!r}; "
                             f"allowed: {READINGS_OF[self.verdict]}")

    def read_as(self, reading: str, why: str = "") -> "Verdict":
        """Set the reading (one of READINGS the status allows) and say why in the notes; returns self."""
        self.reading = reading
        self.__post_init__()
        if why:
            self.notes = " ".join(x for x in (self.notes, why) if x)
        return self

    def record(self) -> dict:
        """The JSON row written to results/<profile>/verdicts/<notebook>.json (read by the scoreboard)."""
        c = CLAIMS[self.claim]
        return {"claim": self.claim, "statement": c.statement, "wording": c.wording, "source": c.source,
                "paper": c.paper, "ours": self.ours, "verdict": self.verdict, "reading": self.reading, "evidence": self.evidence,
                "notebook": c.notebook, "detail": " ".join(x for x in (self.rule, self.notes) if x),
                "budget": _jsonable(self.budget), "uncertainty": _jsonable(self.uncertainty),
                **({"per_model": _jsonable(self.per_model)} if self.per_model else {}),
                **({"source_profile": self.source_profile} if self.source_profile else {})}


def verdict_of(r: dict) -> str:
    """A verdict record's verdict (one of VERDICTS); a row with none (a claim no notebook judged) is not yet run."""
    return str(r.get("verdict") or "not yet run")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def _cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def budget_text(b: dict) -> str:
    def val(v: Any) -> str:
        if isinstance(v, dict):                       # per model (per_model): "SmolLM2: (seeds 0, 1; ...)"
            return f"({budget_text(v)})"
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    # a model's cache key ("smollm2-135m-197d2277...") names nothing a reader knows: the per-model entry says which
    shown = {k: v for k, v in b.items() if not (k == "model" and re.search(r"-[0-9a-f]{16}$", str(v)))}
    return "; ".join(f"{k}{':' if isinstance(v, dict) else ''} {val(v)}" for k, v in shown.items()) or "-"


def markdown(verdicts: Sequence[Verdict | dict]) -> str:
    """A markdown table of verdicts (claim, paper, ours, verdict with its reading under it) that fits the book's
    text column, then per claim its budget and how it was decided."""
    rows = [v.record() if isinstance(v, Verdict) else v for v in verdicts]
    lines = ["| claim | paper | ours | verdict (reading) |", "|---|---|---|---|"]
    for r in rows:
        reading = r.get("reading") or DEFAULT_READING.get(r["verdict"], "")
        lines.append(f"| **{r['claim']}** {_cell(r['statement'])} | {_cell(r['paper'])} | {_cell(r['ours'])} | "
                     f"**{r['verdict']}**" + (f"<br>({_cell(reading)})" if reading else "") + " |")
    lines.append("")
    for r in rows:
        budget = _cell(budget_text(r["budget"])) if r.get("budget") else ""     # none recorded: no "budget: -"
        if r.get("source_profile"):
            budget += f" ({profile_label(r['source_profile'])}'s runs)"
        said = [f"budget: {budget}" if budget.strip() else "", _cell(r["detail"]) if r.get("detail") else ""]
        if any(said):
            lines.append(f"- **{r['claim']}** (wording from {_cell(source_text(r.get('source', '')))}): "
                         + " ".join(x if x.endswith(".") or not x else x + "." for x in said if x))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ statistics
def spread(values: Sequence[float] | float | None) -> dict | None:
    """Median and range of per-seed values (a single number is a range of width 0)."""
    if values is None:
        return None
    v = [float(x) for x in (values if isinstance(values, (list, tuple, np.ndarray)) else [values])]
    v = [x for x in v if x is not None and math.isfinite(x)]
    if not v:
        return None
    return {"median": float(np.median(v)), "min": min(v), "max": max(v), "n": len(v), "values": v}


def spread_text(values: Sequence[float] | float | None, nd: int = 3, compact: bool = False,
                unit: str = "seeds") -> str:
    """'median (range min-max, n seeds)', or 'median [min, max]' for table cells; ``unit``: what the values
    vary over (LLaMA Pro's runs: "data orders")."""
    s = spread(values)
    if s is None:
        return "n/a"
    if s["n"] == 1:
        return fmt(s["median"], nd)
    if compact:
        return f"{fmt(s['median'], nd)} [{fmt(s['min'], nd)}, {fmt(s['max'], nd)}]"
    return f"{fmt(s['median'], nd)} (range {fmt(s['min'], nd)} to {fmt(s['max'], nd)}, {s['n']} {unit})"


def compare_ranges(a: Sequence[float] | float, b: Sequence[float] | float) -> str:
    """'lower' when every value of a is below every value of b, 'higher' the reverse, else 'overlap'."""
    sa, sb = spread(a), spread(b)
    if sa is None or sb is None:
        raise ValueError("compare_ranges needs at least one finite value on each side")
    if sa["max"] < sb["min"]:
        return "lower"
    if sa["min"] > sb["max"]:
        return "higher"
    return "overlap"


def z_score(a: float, se_a: float, b: float, se_b: float) -> float:
    """(a - b) / SE of the difference (independent estimates)."""
    se = math.sqrt(float(se_a) ** 2 + float(se_b) ** 2)
    d = float(a) - float(b)
    if not math.isfinite(se):
        return 0.0                                   # a single point: no evidence either way
    return math.copysign(math.inf, d) if se == 0 and d != 0 else (0.0 if se == 0 else d / se)


def call(z: float) -> str:
    """'higher' / 'lower' when |z| > SE_MULT, else 'within noise'."""
    return "higher" if z > SE_MULT else "lower" if z < -SE_MULT else "within noise"


def smooth(y: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving mean (the first window-1 points average what exists so far)."""
    y = np.asarray(y, dtype=float)
    if window <= 1 or len(y) < window:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:window] / np.arange(1, window)
    return np.concatenate([head, (c[window:] - c[:-window]) / window])


def steps_to_reach(rows: list[dict], target: float, key: str = "loss", window: int = 10) -> dict | None:
    """First step (and its tokens, FLOPs, seconds) at which the smoothed curve is <= target."""
    if not rows:
        return None
    s = smooth([r[key] for r in rows], window)
    hit = np.nonzero(s <= target)[0]
    if not len(hit):
        return None
    r = rows[int(hit[0])]
    return {k: r.get(k) for k in ("step", "tokens", "flops", "elapsed_s")}


def paired_window(a: list[dict], b: list[dict], where: str = "end", window: int = 10,
                  key: str = "loss") -> dict | None:
    """Mean and SE of a - b over the first or last `window` steps both runs logged (paired by step:
    the runs see the same batches, so batch difficulty cancels)."""
    bs = {r["step"]: r[key] for r in b}
    steps = [r["step"] for r in a if r["step"] in bs]
    if not steps:
        return None
    av = {r["step"]: r[key] for r in a}
    pick = steps[:window] if where == "start" else steps[-window:]
    d = np.array([av[s] - bs[s] for s in pick], dtype=float)
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    return {"mean": float(d.mean()), "se": se, "n": len(d), "steps": [pick[0], pick[-1]],
            "z": z_score(float(d.mean()), se, 0.0, 0.0)}


def _vs(x: dict | None) -> str:
    return "n/a" if x is None else f"{fmt(x['mean'])} +- {fmt(x['se'])}"


def _agreed(by_model: dict[str, Verdict], who: str) -> tuple[list[Verdict], set[str], str]:
    """The verdicts of one claim on several models, their statuses, and the status they agree on
    (inconclusive when they disagree): what per_model and across_models share; they differ in how the
    models' numbers are shown (one `ours` line each vs the scoreboard's per-model column)."""
    vs = list(by_model.values())
    if not vs:
        raise ValueError(f"{who} needs at least one model's verdict")
    if len({v.claim for v in vs}) != 1:
        raise ValueError(f"{who} combines verdicts of one claim, got {sorted({v.claim for v in vs})}")
    statuses = {v.verdict for v in vs}
    return vs, statuses, vs[0].verdict if len(statuses) == 1 else "inconclusive"


def _common_reading(vs: list[Verdict], status: str) -> str:
    """The reading the models' verdicts agree on when it fits the combined status, else "" (the default)."""
    readings = {v.reading for v in vs}
    one = next(iter(readings))
    return one if len(readings) == 1 and one in READINGS_OF[status] else ""


def per_model(verdicts: dict[str, Verdict]) -> Verdict:
    """One verdict for a claim judged on several models ({model label: its verdict}, the profile's main
    model first): each model's measurement in `ours` ("SmolLM2-135M: ...; Gemma-3-270M: ..."). The status
    is the models' common status; when they disagree it is inconclusive and the notes say which model
    gave what (one model's verdict does not speak for the method)."""
    vs, statuses, status = _agreed(verdicts, "per_model")
    if len(vs) == 1:
        return vs[0]
    each = "; ".join(f"{m}: {v.verdict}" for m, v in verdicts.items())
    notes = " ".join(f"{m}: {v.notes}" for m, v in verdicts.items() if v.notes)
    return Verdict(vs[0].claim, status, "; ".join(f"{m}: {v.ours}" for m, v in verdicts.items()),
                   rule=vs[0].rule + (f" Judged on each model; the models disagree ({each}), so inconclusive."
                                      if len(statuses) > 1 else f" Judged on each model ({each})."),
                   budget={m: v.budget for m, v in verdicts.items()},
                   uncertainty={m: v.uncertainty for m, v in verdicts.items()},
                   notes=notes, evidence=vs[0].evidence, reading=_common_reading(vs, status))


def across_models(by_model: dict[str, Verdict]) -> Verdict:
    """One verdict row for a claim judged separately on each model (profile `model` + `extra_models`):
    the status all models agree on, else inconclusive (the models disagree); each model's own status
    and measurement go to ``per_model`` (the scoreboard's per-model column)."""
    vs, statuses, status = _agreed(by_model, "across_models")
    first = vs[0]
    per = {m: f"{v.verdict}: {v.ours}" for m, v in by_model.items()}
    notes = " ".join(x for x in (first.notes, "" if len(statuses) == 1 else
                                 "The models disagree (" + "; ".join(f"{m}: {v.verdict}" for m, v in by_model.items()) + ").") if x)
    return Verdict(first.claim, status, " | ".join(f"{m}: {v.ours}" for m, v in by_model.items()), first.rule,
                   budget=first.budget, uncertainty={m: v.uncertainty for m, v in by_model.items()}, notes=notes,
                   evidence=first.evidence, per_model=per, reading=_common_reading(vs, status))


def summary(verdicts: Sequence[Verdict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in verdicts:
        out[v.verdict] = out.get(v.verdict, 0) + 1
    return out


def as_dict(v: Verdict) -> dict:
    return asdict(v)


# ------------------------------------------------------------------------------ paired accuracies (C5's power)
def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b questions only the first model gets right, c only the second."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def paired_accuracy(by_task: dict[str, tuple[Sequence[bool], Sequence[bool]]]) -> dict:
    """Two models on the same questions: task -> (first model correct per question, second's), in one order.
    The difference of the mean accuracy over tasks (first minus second), its paired SE (per task
    sqrt(b + c - (b - c)^2 / n) / n, tasks independent), z, the smallest difference it could call (SE_MULT SE)
    and each task's exact McNemar p."""
    if not by_task:
        raise ValueError("paired_accuracy needs at least one task")
    diffs, ses, per = [], [], {}
    for task, (a, b_) in by_task.items():
        a, b_ = np.asarray(a, bool), np.asarray(b_, bool)
        if a.shape != b_.shape or not len(a):
            raise ValueError(f"{task}: the two models must answer the same questions ({a.shape} vs {b_.shape})")
        n = len(a)
        only_a, only_b = int((a & ~b_).sum()), int((~a & b_).sum())
        d = (only_a - only_b) / n
        se = math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
        diffs.append(d)
        ses.append(se)
        per[task] = {"diff": d, "se": se, "n": n, "only_first": only_a, "only_second": only_b,
                     "p_mcnemar": mcnemar_exact(only_a, only_b)}
    k = len(diffs)
    diff, se = float(np.mean(diffs)), math.sqrt(sum(s * s for s in ses)) / k
    return {"diff": diff, "se": se, "z": z_score(diff, se, 0.0, 0.0), "mdd": SE_MULT * se, "tasks": per}


# ------------------------------------------------------------------------------ a few runs against a few runs
def permutation_p(a: Sequence[float], b: Sequence[float], alternative: str = "less") -> dict:
    """Exact permutation test of mean(a) - mean(b) over every split of the pooled values into groups of
    len(a) and len(b) ("less": the share of splits whose difference is at or below the observed one; "greater":
    at or above). With 2 runs against 3 there are 10 splits, so p can never be below 0.1: ``smallest_p`` says
    what the run counts allow."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    if not a or not b:
        raise ValueError("permutation_p needs a value on each side")
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
    pool, k = a + b, len(a)
    obs = float(np.mean(a) - np.mean(b))
    diffs = []
    for idx in combinations(range(len(pool)), k):
        s = set(idx)
        diffs.append(float(np.mean([pool[i] for i in idx]) - np.mean([pool[i] for i in range(len(pool)) if i not in s])))
    d = np.array(diffs)
    tol = 1e-12 * max(1.0, abs(obs))
    hits = (d <= obs + tol) if alternative == "less" else (d >= obs - tol)
    return {"p": float(hits.mean()), "smallest_p": 1.0 / len(d), "splits": len(d), "diff": obs}
