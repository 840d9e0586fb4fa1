"""The book's generated pages: the scoreboard (verdict per claim), the landing page's summary and figure,
the provenance page, run times and links; `write_generated` writes them all into book/generated/."""
from __future__ import annotations

import csv
import html as H
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from .common import BOOK_DIR, CLAIMS, GENERATED, NOTEBOOKS
from .. import PROJECT_ROOT
from ..core.store import commit_label, hardware_label, read_json, write_json
from ..core.layout import Results
from ..core.ledger import load_results
from ..claims.verdict import READINGS, VERDICTS, verdict_of
from ..bench.report import bench_markdown
from ..claims.paper import PAPER_HOURS, opt_deus_sentence
from ..claims.rules import OPT_DEUS_BESIDE, SCALE_BUDGET
from ..core.models import model_label, profile_label
from ..grow.methods import METHODS, display_name
from ..plots import figures as plots
from ..plots.style import setup
from ..plots.table import fmt_num
from ..study.profiles import load_profile
from ..study.results import recorded_eval_s
from .display import TERMS, spread_format, uniform
from .links import evidence_link, figure_anchors, record_dict


def collect_verdicts(profile: str) -> list[dict]:
    vdir = Results(profile).verdicts()
    found: dict[str, list[dict]] = {}
    sources: dict[str, str] = {}
    for p in sorted(vdir.glob("*.json")) if vdir.exists() else []:
        blob = read_json(p)
        for v in blob["verdicts"]:
            found.setdefault(v["claim"], []).append(v)
            sources[v["claim"]] = v.get("source_profile") or blob.get("source_profile") or profile
    rows = []
    for cid, (statement, nb) in CLAIMS.items():
        for v in found.get(cid, []) or [{"claim": cid, "statement": statement, "paper": "-", "ours": "-",
                                          "verdict": "not yet run", "notebook": nb, "detail": ""}]:
            rows.append({**v, "source_profile": sources.get(cid, profile)})
    return rows


def _cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _slug(s: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else " " for ch in str(s).lower()).split())


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    """verdict -> number of claims, in the order of VERDICTS (unknown verdicts last)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[verdict_of(r)] = counts.get(verdict_of(r), 0) + 1
    order = {v: i for i, v in enumerate(VERDICTS)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _counts_sentence(counts: dict[str, int]) -> str:
    return ", ".join(f'<span class="verdict verdict-{_slug(v)}">{v}</span> {n}' for v, n in counts.items())


_HASH_KEY = re.compile(r"^([\w.-]+?)-[0-9a-f]{12,}$")      # a cache key (model name + hash) in a budget


def _key_text(k: Any) -> str:
    """A record key as words: method ids by their display names, "_minus_" as "−", underscores as spaces."""
    s = str(k)
    if s.lower() in METHODS or s in TERMS:
        return display_name(s) if s.lower() in METHODS else TERMS[s]
    s = s.replace("_minus_", " − ")
    for m in sorted(METHODS, key=len, reverse=True):
        s = re.sub(rf"(?<![a-z]){re.escape(m)}(?![a-z])", display_name(m), s)
    return s.replace("_", " ")


def extra_text(v: Any) -> str:
    """A budget or uncertainty value as the book prints it: a seed spread {median, min, max, n} in the book's one
    format, "median (min–max, n runs)" (lesa.book.display.spread_format), a paired difference {mean, se, n} as
    "mean ± se (n = n)", other mappings as "key: value" (keys in words, nested ones in parentheses; the raw
    per-seed `values` and step lists left out), cache keys by their model's name, numbers as the book prints
    them; never a Python repr (a record that stored one is parsed first)."""
    if isinstance(v, str) and v.startswith("{"):
        v = record_dict(v) or v
    spread_keys, paired_keys = {"median", "min", "max", "n"}, {"mean", "se"}
    summary = lambda x: isinstance(x, dict) and (spread_keys <= set(x) or paired_keys <= set(x))
    if isinstance(v, dict):
        if spread_keys <= set(v):
            med, lo, hi = fmt_num(v["median"]), fmt_num(v["min"]), fmt_num(v["max"])
            if v["n"] == 1:
                return uniform(med)
            return uniform(spread_format(med, lo, hi, v["n"], "runs") if (lo, hi) != (med, med)
                           else f"{med} (all {v['n']} equal)")
        if paired_keys <= set(v):
            return uniform(f"{fmt_num(v['mean'])} ± {fmt_num(v['se'])}" + (f" (n = {v['n']})" if "n" in v else ""))
        nested = lambda x: f"({extra_text(x)})" if isinstance(x, dict) and not summary(x) else extra_text(x)
        return "; ".join(f"{_key_text(k)}: {nested(x)}" for k, x in v.items()
                         if not (k == "values" or (k == "steps" and isinstance(x, list))))   # per-run lists: in the CSV
    if isinstance(v, (list, tuple)):
        return ", ".join(extra_text(x) for x in v)
    if isinstance(v, str):
        m = _HASH_KEY.match(v)
        return model_label(m[1]) if m else uniform(v)
    return uniform(fmt_num(v))


def _extra(r: dict, key: str) -> str:
    """A verdict row's budget or uncertainty as text ("" when the row has none)."""
    v = r.get(key)
    return "" if v is None or v == "" or v == {} else extra_text(v)


def scoreboard_rows_csv(rows: list[dict], path: Path) -> Path:
    """The scoreboard as a CSV (one row per claim) for download."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["claim", "statement", "verdict", "reading", "paper", "ours", "per_model", "budget", "uncertainty",
                    "notebook", "source_profile", "scale_and_budget", "detail"])
        for r in rows:
            w.writerow([r["claim"], r.get("statement", ""), verdict_of(r), reading_of(r), r.get("paper", ""), r.get("ours", ""),
                        "; ".join(f"{m}: {x}" for m, x in (r.get("per_model") or {}).items()),
                        _extra(r, "budget"), _extra(r, "uncertainty"), r.get("notebook", ""),
                        r.get("source_profile", ""), scale_text(r), r.get("detail", "")])
    return path


def scoreboard_markdown(profile: str, rows: list[dict]) -> str:
    """The scoreboard page: counts, then one HTML table row per claim that fits the text column (claim, verdict
    with its reading, the paper's value, ours, and a link to the figure that decides it; colour-coded by
    book/_static/lesa.css, stacked into cards on a phone), then each claim's budget, uncertainty, scale note and
    rule in a collapsed block, and a CSV download. Numbers in the book's one format (lesa.book.display.uniform)."""
    counts = verdict_counts(rows)
    anchors = figure_anchors(profile=profile)
    head = ["claim", "verdict and reading", "the paper", "this replication", "decided in"]
    trs, blocks = [], []
    for r in rows:
        v = verdict_of(r)
        reading = reading_of(r)
        src = ("" if r.get("source_profile", profile) == profile
               else f" <em>({H.escape(profile_label(r['source_profile']))}'s runs)</em>")
        href, text = evidence_link(r, anchors)
        per_model = r.get("per_model") or {}
        if isinstance(per_model, str):                # an older record stored its repr
            per_model = record_dict(per_model)
        ours = ("<br>".join(f"<strong>{H.escape(m)}</strong>: {H.escape(uniform(x))}" for m, x in per_model.items())
                if per_model else H.escape(uniform(str(r.get("ours", "–")))))
        reading_html = (f'<a href="#reading-{_slug(reading)}">{H.escape(reading)}</a>' if reading != NO_READING else
                        f"{NO_READING} (chapter {H.escape(r.get('notebook', '')[:2].lstrip('0'))} predates readings)")
        cells = [f"<strong>{H.escape(r['claim'])}</strong> {H.escape(str(r.get('statement', '')))}",
                 f'<span class="verdict verdict-{_slug(v)}">{H.escape(v)}</span><br><small>{reading_html}</small>',
                 H.escape(uniform(str(r.get("paper", "–")))), ours + src,
                 (f'<a href="{H.escape(href)}">{H.escape(text)}</a>' if href else "–")
                 + f' · <a href="#how-{_slug(r["claim"])}">how</a>']
        trs.append(f'<tr id="claim-{_slug(r["claim"])}" class="verdict-row-{_slug(v)}">'
                   + "".join(f'<td data-label="{h}">{c}</td>' for h, c in zip(head, cells)) + "</tr>")
        facts = [(k, _extra(r, k)) for k in ("budget", "uncertainty")] + [
            ("could a larger model or more tokens change it?", scale_text(r)), ("rule", uniform(r.get("detail", "")))]
        facts = [(k, x) for k, x in facts if x]
        if facts:
            blocks.append(f'<details id="how-{_slug(r["claim"])}" class="lesa-how"><summary><strong>{H.escape(r["claim"])}'
                          f"</strong> {H.escape(str(r.get('statement', '')))}</summary><dl>"
                          + "".join(f"<dt>{H.escape(k)}</dt><dd>{H.escape(x)}</dd>" for k, x in facts) + "</dl></details>")
    table = ('<div class="lesa-table-wrap"><table class="lesa-table lesa-stack scoreboard"><caption>Table 1. The claims, '
             "their verdicts and the figure that decides each.</caption><thead><tr>"
             + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>" + "".join(trs) + "</tbody></table></div>")
    lines = ["# Claims scoreboard", "",
             *(["```{warning}", "Profile `smoke` uses a tiny **random** model: these verdicts only show that every "
                "code path runs. They say nothing about LESA; see a `cpu` or `gpu` build for evidence.", "```", ""]
               if profile == "smoke" else []),
             f"{len(rows)} claims: {_counts_sentence(counts)}.", "",
             "Each verdict is computed by the chapter linked in its row, from that chapter's results; *decided in* goes "
             "to the figure that shows the decision, *how* to its budget, uncertainty and rule below. The paper's "
             "values come from secondary summaries of the paper ({doc}`limitations`). Spreads over runs read "
             "\"median (lowest–highest, number of runs)\"; paired differences \"mean ± standard error\".", "",
             table, "",
             "Download the scoreboard: {download}`the claims as a CSV file <generated/scoreboard.csv>` (one row per "
             "claim, with how each verdict was decided).", "",
             "## What a reading means", "",
             "A verdict says whether the claim's criterion was met; its reading says what that supports. The readings "
             "form one fixed set, assigned by each claim's rule:", "",
             *[f'- <span id="reading-{_slug(k)}"></span>**{k}**: {d}.' for k, d in READINGS.items()], "",
             "Beside each claim the book does not reproduce or cannot decide, its block below says whether a larger "
             f"model or more tokens could change it; for {', '.join(OPT_DEUS_BESIDE)} it also states the independent "
             "run of the released code at 1.7B and 11.5B (OpT-DeUS) beside ours.", "",
             "## Budget, uncertainty and rule of each claim", "", *blocks]
    return "\n".join(lines) + "\n"


NO_READING = "not assigned yet"      # a verdict record written before readings existed (issue 37)


def reading_of(r: dict) -> str:
    """A scoreboard row's reading (lesa.claims.verdict.READINGS), as its chapter's rule assigned it; a record
    written before readings existed has none, and its chapter must run again: NO_READING (never a default guessed
    from the status: a reproduced claim's reading may be "uninformative"). Claims not tested read "not tested"."""
    if r.get("reading"):
        return r["reading"]
    return "not tested" if verdict_of(r) in ("not yet run", "not testable offline") else NO_READING


def scale_text(r: dict) -> str:
    """For a claim not reproduced or undecided: whether a larger model or more tokens could change it
    (lesa.claims.rules.SCALE_BUDGET), with the independent OpT-DeUS run beside the CPT claims; "" otherwise."""
    if verdict_of(r) not in ("not reproduced", "inconclusive") or r["claim"] not in SCALE_BUDGET:
        return ""
    return " ".join([SCALE_BUDGET[r["claim"]], *([r["ladder"]] if r.get("ladder") else []),
                     *([opt_deus_sentence()] if r["claim"] in OPT_DEUS_BESIDE else [])])


def with_ladder_notes(profile: str, rows: list[dict]) -> list[dict]:
    """The scoreboard rows with what the scale ladder (chapter 7) measured for each claim (lesa.study.scale.
    ladder_notes), read from the ladder's results as they stand (never measured here): the answer beside a
    verdict at 135M to "would a larger model change it?"."""
    from ..study import scale as Sc          # local: the ladder's module loads torch, the book's pages need not

    prof = Sc.load_profile(Sc.scale_profile_of(profile))
    notes = Sc.ladder_notes(Sc.ladder(load_results(prof["name"]), Sc.settings(prof)))
    return [{**r, "ladder": notes[r["claim"]]} if r["claim"] in notes else r for r in rows]


def repository_url() -> str | None:
    """The repository's web address: LESA_REPOSITORY_URL, else GitHub Actions' GITHUB_SERVER_URL and
    GITHUB_REPOSITORY (the publishing workflow), else the `origin` remote as https; None when unknown."""
    if os.environ.get("LESA_REPOSITORY_URL"):
        return os.environ["LESA_REPOSITORY_URL"].rstrip("/")
    if os.environ.get("GITHUB_REPOSITORY"):
        return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ['GITHUB_REPOSITORY']}"
    try:
        out = subprocess.run(["git", "remote", "get-url", "origin"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if out.startswith("git@") and ":" in out:
        host, path = out[4:].split(":", 1)
        out = f"https://{host}/{path}"
    return out.removesuffix(".git") if out.startswith("https://") else None


# colour names of plots.VERDICT_COLORS, for captions
_COLOUR_NAMES = {"reproduced": "green", "inconclusive": "amber", "not reproduced": "red",
                 "not testable offline": "dark grey", "not yet run": "light grey"}


def split_sentence(rows: list[dict]) -> str:
    """How the paper's claims became the scoreboard's rows: which claims are split and into how many parts
    (from the claim ids: C7a, C7b -> "C7 into 2"), never typed."""
    parts: dict[str, int] = {}
    for c in CLAIMS:
        if c[-1].isalpha():
            parts[c[:-1]] = parts.get(c[:-1], 0) + 1
    split = " and ".join(f"{c} into {n}" for c, n in parts.items())
    return (f"The paper's twelve claims (C1–C12) make {len(rows)} rows here"
            + (f", with {split} parts judged separately" if split else "") + ".")


def summary_markdown(profile: str, rows: list[dict]) -> str:
    """The landing page's closing note, generated: how the claims are split into rows and the scale of this
    build (the abstract above it, lesa.book.abstract, holds the answer and the claims table)."""
    lines = [f"*This build shows profile `{profile}`.* " + split_sentence(rows), ""]
    if profile == "smoke":
        lines += ["```{warning}", "Profile `smoke` uses a tiny **random** model: these verdicts only show that every code "
                  "path runs and say nothing about LESA.", "```", ""]
    lines += [scale_sentence(profile, rows), ""]
    return "\n".join(lines) + "\n"


def scale_sentence(profile: str, rows: list[dict] | None = None) -> str:
    """The scale caveat of a build, from its profile and its CPT runs' summaries (never typed). Claims whose
    verdict a longer profile's runs decided (their row's ``source_profile``, e.g. cpu-long in the cpu book)
    are named with that profile's budget."""
    model = (load_profile(profile, check_device=False).get("model") or {}).get("name", profile)

    def summaries(p: str) -> list[dict]:
        return [read_json(f) for f in sorted(Results(p).cpt().glob("*/summary.json"))]

    span = lambda xs: fmt_num(xs[0]) if len(xs) == 1 else f"{fmt_num(xs[0])} to {fmt_num(xs[-1])}"  # noqa: E731

    def budget(runs: list[dict]) -> str | None:
        tokens = sorted({r.get("tokens") for r in runs if r.get("tokens")})
        steps = sorted({r.get("steps") for r in runs if r.get("steps")})
        return f"{span(steps)} steps ({span(tokens)} tokens)" if tokens and steps else None

    runs = summaries(profile)
    grown = next((r for r in runs if (r.get("growth") or {}).get("target_layers")), None)
    shape = (f" grown from {grown['growth']['source_layers']} to {grown['growth']['target_layers']} layers"
             if grown else "")
    own = budget(runs)
    train = (f", each continual pre-training run {own}" if own
             else ", compared before training only (no continual pre-training runs in this build)")
    longer: dict[str, list[str]] = {}       # profile -> the claims its runs decided (a verdict, not "not testable")
    for r in rows or []:
        src = r.get("source_profile")
        if src and src != profile and verdict_of(r) != "not testable offline":
            longer.setdefault(src, []).append(r["claim"])
    budgets = {p: budget(summaries(p)) for p in longer}      # each profile's summaries read once
    named = [f"{', '.join(cs)} from {profile_label(p)} (its continual pre-training runs: {budgets[p]} each)"
             for p, cs in longer.items() if budgets[p]]
    if named:
        train = ", " + "; ".join(named)
    return (f"**Scale.** These verdicts come from {model_label(model)}{shape}{train}; the paper grows Llama-3-8B from 32 to 48 layers "
            f"and trains it for 6,000 steps on Wikipedia ({fmt_num(PAPER_HOURS['lesa'])} hours for LESA). *Not reproduced* here means "
            "\"not at this scale, with these controls\", "
            "not \"false\" ({doc}`limitations`).")


def results_sources_markdown(profile: str) -> str:
    """Which committed result folders exist, for the reproduce page (never claims a folder that is absent)."""
    have = [p for p in ("cpu", "gpu") if Results(p).executed().exists()]
    lines = []
    if have:
        lines.append("Executed notebooks are committed for profile" + ("s " if len(have) > 1 else " ")
                     + " and ".join(f"`{p}` (`results/{p}/executed/`)" for p in have) + ".")
    else:
        lines.append("No executed notebooks are committed yet.")
    # which profile's CPT runs chapters 4 and 5 show: the one their verdicts were computed from (a longer
    # profile's, cpu-long's, once all its runs finished), never assumed
    shown = {r.get("source_profile") or profile for r in collect_verdicts(profile)
             if r.get("notebook") in ("04_cpt_curves", "05_downstream") and verdict_of(r) != "not yet run"}
    shown = sorted(shown) or [profile]
    which = " and ".join(f"`{p}`" for p in shown)
    if not Results("gpu").dir.exists():
        lines.append(f"There are no `gpu` results yet: on a CPU machine, the CPT curves (chapter 4) and downstream "
                     f"evaluation (chapter 5) show the {which} profile's CPT runs"
                     + (f" (a longer version of `{profile}`, with more tokens per run)"
                        if shown != [profile] else "") + ".")
    else:
        lines.append("Chapters whose results need a GPU (chapters 4 and 5) render the committed `results/gpu/` files "
                     "on a CPU machine and say so at the top of the page.")
    return " ".join(lines) + "\n"


def run_times_markdown(profile: str) -> str:
    p = Results(profile).file("book_run.json")
    if not p.exists():
        return f"*No recorded run of the notebooks for profile `{profile}` yet.*\n"
    t = read_json(p)
    lines = [f"Measured wall-clock per notebook for profile `{profile}` (from `results/{profile}/book_run.json`):", "",
             "| notebook | seconds | CPUs | when (UTC) |", "|---|---|---|---|"]
    for n in NOTEBOOKS:
        if n in t:
            lines.append(f"| {n} | {t[n]['seconds']} | {t[n].get('cpus')} | {t[n]['time_utc']} |")
    total = sum(v["seconds"] for v in t.values())
    lines += ["", f"Total: {round(total, 1)} s."]
    return "\n".join(lines) + "\n" + cpt_times_markdown(profile)


def cpt_times_markdown(profile: str) -> str:
    """Measured wall-clock of each CPT run of ``profile``: training (summary.json's elapsed_s, the median
    step) and the post-training evaluation (the sum of its downstream records' seconds)."""
    R = Results(profile)
    runs = sorted(p.parent for p in R.cpt().glob("*/summary.json"))
    if not runs:
        return ""
    lines = ["", f"Continual pre-training (CPT) runs of profile `{profile}`, each trained, then evaluated "
             f"(`python -m lesa.study.cpt --profile {profile}`; from `results/{profile}/cpt/*/summary.json` and "
             f"`results/{profile}/downstream/*/`):", "",
             "| run | steps | training s (with held-out monitoring) | s/step (median) | evaluation s | finished (UTC) |", "|---|---|---|---|---|---|"]
    total = 0.0
    for d in runs:
        s = read_json(d / "summary.json")
        ev = recorded_eval_s(R, d.name)
        train_s = s.get("elapsed_s") or 0
        total += train_s + ev
        when = ((s.get("provenance") or {}).get("time_utc") or "-")
        lines.append(f"| {d.name} | {s.get('steps')} | {train_s:.0f} | {s.get('step_s_median') or 0:.2f} | "
                     f"{ev:.0f} | {when} |")
    lines += ["", f"Total: {total:.0f} s of training and evaluation (growing the models and loading them come on top)."]
    return "\n".join(lines) + "\n"


def _utc(t: str | None) -> str:
    """A UTC time stamp that can wrap in a narrow column (date, space, time) instead of one 20-character word."""
    return (t or "-").replace("T", " ", 1)


def _same_in_every_row(head: list[str], rows: list[list[str]], lead: str) -> tuple[list[str], list[list[str]], str]:
    """Columns (after the first) whose value is the same in every row leave the table for one sentence above it
    (``lead``: what the rows are), so a table stays narrow enough for the text column and nothing is lost."""
    same = [j for j in range(1, len(head)) if len(rows) > 1 and len({r[j] for r in rows}) == 1]
    if not same:
        return head, rows, ""
    keep = [j for j in range(len(head)) if j not in same]
    said = "; ".join(f"{head[j]}: {rows[0][j]}" for j in same)
    return [head[j] for j in keep], [[r[j] for j in keep] for r in rows], f"{lead}: {said}."


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows)]


def _two_tables(head: list[str], rows: list[list[str]], split: int) -> list[str]:
    """A run table as two narrow ones, what ran (columns before ``split``) and where and when (the run, then the
    rest), each without the columns that are the same in every row (said once above it): one table of all of them
    broke run names and commits in the middle to fit the text column."""
    out: list[str] = []
    for cols in (range(split), [0, *range(split, len(head))]):
        h, r, said = _same_in_every_row([head[j] for j in cols], [[row[j] for j in cols] for row in rows],
                                        "Same for every run")
        out += ([said, ""] if said else []) + (_md_table(h, r) + [""] if len(h) > 1 else [])
    return out[:-1] if out and out[-1] == "" else out


def _versions_key(prov: dict) -> tuple:
    return (("python", prov.get("python")), *sorted((prov.get("versions") or {}).items()))


def provenance_markdown(profile: str) -> str:
    """How each figure and number of a build was produced, from the result files only: per notebook its
    figures (manifest.json), the claims it judged (verdicts/*.json with their provenance: profile of the
    results, commit, hardware, versions, UTC time) and its wall-clock (book_run.json); the CPT runs
    (cpt/*/summary.json) and downstream records (downstream/<run>/*.json) the notebooks read."""
    R = Results(profile)
    times = read_json(R.file("book_run.json")) if R.file("book_run.json").exists() else {}
    used: dict[tuple, list[str]] = {}                                  # versions -> who used them

    def note(prov: dict | None, who: str) -> None:
        if prov:
            used.setdefault(_versions_key(prov), []).append(who)

    lines = [f"Generated by `python -m lesa.book build --profile {profile}` from the result files alone "
             f"(`results/{profile}/`); nothing here is typed by hand. Every result file carries its provenance: the "
             "git commit of the code that wrote it (with the edited files named when the working tree differed from that "
             "commit in code, configuration or data; records written before those files were recorded only say that the "
             "tree differed, which includes the result files a run rewrites itself), the hardware, the package versions "
             "and the UTC time. The executed notebooks the chapters show "
             f"are `results/{profile}/executed/*.ipynb`.", "",
             "## Notebooks: figures and verdicts", ""]
    what, where = [], []                           # two narrow tables: what each notebook made, how it was run
    sources = {profile}
    for n in NOTEBOOKS:
        man = R.chapter(n) / "manifest.json"
        figs = [Path(f).stem for f in read_json(man)["figures"]] if man.exists() else []
        vpath = R.verdicts(n)
        v = read_json(vpath) if vpath.exists() else {}
        prov = v.get("provenance") or {}
        note(prov, f"notebook {n[:2]}")
        src = v.get("source_profile") or profile
        sources |= {src, *(r["source_profile"] for r in v.get("verdicts", []) if r.get("source_profile"))}
        own = lambda r: f" (`{r['source_profile']}`)" if r.get("source_profile", src) != src else ""
        t = times.get(n)
        wall = f"{t['seconds']} s on {t.get('cpus', '?')} CPUs" if t else "not run"
        doc = f"{{doc}}`{n} <chapters/{n}>`"
        what.append([doc, ", ".join(f"`{f}`" for f in figs) or "-",
                     f"{', '.join(r['claim'] + own(r) for r in v.get('verdicts', [])) or '-'}"
                     f"{'' if src == profile else f' (from the `{src}` results)'}"])
        where.append([doc, commit_label(prov), hardware_label(prov.get("hardware")), _utc(prov.get("time_utc")), wall])
    lines += [*_md_table(["notebook", "figures", "claims judged"], what), ""]
    head, rows, said = _same_in_every_row(["notebook", "commit", "hardware", "verdicts written (UTC)", "wall-clock"],
                                          where, "Same for every notebook")
    lines += ([said, ""] if said else []) + [*_md_table(head, rows)]
    lines += ["", f"Figures are saved under `results/{profile}/<notebook>/figures/` (names above, `.png`) and listed in "
              "each notebook's `manifest.json`; verdicts in `results/" + profile + "/verdicts/<notebook>.json`. "
              f"Wall-clock is the papermill run of the whole notebook (`results/{profile}/book_run.json`)."]
    for src in sorted(sources):
        runs = sorted(Results(src).cpt().glob("*/summary.json"))
        lines += ["", f"## Continual pre-training runs (`results/{src}/cpt/`)", ""]
        if not runs:
            lines.append(f"*No CPT runs recorded for profile `{src}`.*")
        else:
            rows = []
            for p in runs:
                s = read_json(p)
                prov = s.get("provenance") or {}
                note(prov, f"CPT {s.get('name', p.parent.name)}")
                rows.append([f"`{s.get('name', p.parent.name)}`", (s.get('growth') or {}).get('method', 'none (base)'),
                             str(s.get('steps')), fmt_num(s.get('tokens')),
                             f"{s.get('device')}, {s.get('precision')}, {s.get('world_size')}",
                             f"{round(float(s.get('elapsed_s') or 0))} s", commit_label(prov),
                             hardware_label(prov.get('hardware')), _utc(prov.get('time_utc'))])
            lines += _two_tables(["run", "method", "steps", "tokens", "device, precision, processes", "elapsed",
                                  "commit", "hardware", "started (UTC)"], rows, 6)
        recs = sorted(Results(src).downstream().glob("*/*.json"))
        lines += ["", f"## Downstream evaluation records (`results/{src}/downstream/`)", ""]
        if not recs:
            lines.append(f"*No downstream records for profile `{src}`.*")
            continue
        by_run: dict[str, list[dict]] = {}
        for p in recs:
            by_run.setdefault(p.parent.name, []).append(read_json(p))
        rows = []
        for run_name, rs in by_run.items():
            provs = [r.get("provenance") or {} for r in rs]
            for pr in provs:
                note(pr, f"downstream {run_name}")
            stamps = sorted(pr.get("time_utc", "") for pr in provs if pr.get("time_utc"))
            span = (f"{_utc(stamps[0])} to {_utc(stamps[-1])}" if len(set(stamps)) > 1
                    else (_utc(stamps[0]) if stamps else "-"))
            tasks = ", ".join(f"{r.get('task')}: {r.get('n_samples')}" for r in rs)
            rows.append([f"`{run_name}`", tasks, ", ".join(sorted({commit_label(pr) for pr in provs})),
                         "; ".join(sorted({hardware_label(pr.get("hardware")) for pr in provs})), span])
        lines += _two_tables(["run", "records (task: examples)", "commit", "hardware", "written (UTC)"], rows, 2)
    lines += ["", "## Package versions", ""]
    if not used:
        lines.append(f"*No results recorded for profile `{profile}` yet.*")
    else:
        # one column per set of versions (a package per row), the files that used each set listed below it:
        # a column per package would be wider than the text column
        names = ["python"] + sorted({k for key in used for k, _ in key} - {"python"})
        sets = list(used.items())
        lines += ["| package | " + " | ".join(f"set {i + 1}" for i in range(len(sets))) + " |",
                  "|" + "---|" * (len(sets) + 1)]
        lines += ["| " + k + " | " + " | ".join(str(dict(key).get(k, "-")) for key, _ in sets) + " |" for k in names]
        lines.append("")
        for i, (key, who) in enumerate(sets):
            counts: dict[str, int] = {}
            for w in who:
                counts[w] = counts.get(w, 0) + 1
            users = ", ".join(f"{w} ({c})" if c > 1 else w for w, c in counts.items())
            lines.append(f"- Set {i + 1} used by: {users}.")
    return "\n".join(lines) + "\n"


def write_generated(profile: str) -> list[dict]:
    """Everything the book shows that is computed from results: the scoreboard (page, CSV, JSON), the
    landing page's summary and figure, run times, provenance, benchmarks, which results exist."""
    rows = with_ladder_notes(profile, collect_verdicts(profile))
    (BOOK_DIR / "scoreboard.md").write_text(scoreboard_markdown(profile, rows))
    GENERATED.mkdir(parents=True, exist_ok=True)
    scoreboard_rows_csv(rows, GENERATED / "scoreboard.csv")
    (GENERATED / "summary.png").unlink(missing_ok=True)          # the old image of the claims table
    (GENERATED / "summary.md").write_text(summary_markdown(profile, rows))
    (GENERATED / "links.md").write_text(links_markdown())
    (GENERATED / "results_sources.md").write_text(results_sources_markdown(profile))
    (GENERATED / "run_times.md").write_text(run_times_markdown(profile))
    (GENERATED / "profile.md").write_text(f"This build shows profile **`{profile}`**.\n")
    (GENERATED / "provenance.md").write_text(provenance_markdown(profile))
    (GENERATED / "bench.md").write_text(bench_markdown())
    write_json(Results(profile).file("scoreboard.json"), {"profile": profile, "claims": rows})
    return rows


def write_summary_figure(rows: list[dict], path: Path) -> Path:
    """The landing page's figure (plots.scoreboard_figure), drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setup()
    fig = plots.scoreboard_figure(rows, {c: s for c, (s, _) in CLAIMS.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200)
    plt.close(fig)
    return path


PAPER_URL = "https://arxiv.org/abs/2502.13794"


def links_markdown() -> str:
    """Paper and repository links for the landing page (the repository only when its address is known)."""
    repo = repository_url()
    return (f"[Paper (arXiv 2502.13794)]({PAPER_URL}) · "
            + (f"[Source code of this replication]({repo})" if repo else
               "Source code: the repository this book was built from (no public address recorded)")
            + " · {ref}`How to cite <how-to-cite>`\n")
