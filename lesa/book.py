"""The book: run the notebooks with papermill (cached), generate the scoreboard, build, check.

    python -m lesa.book run   --profile {smoke,cpu,gpu,auto} [--force] [--only 01_svd_evidence ...]
    python -m lesa.book build --profile P      # scoreboard + jupyter-book build -W + page/figure/link checks
    python -m lesa.book check --profile P [--screenshots]   # + what a reader trips over (lesa.bookcheck)
    python -m lesa.book all   --profile P      # both

Notebooks execute into _build/executed/<profile>/ with a stamp holding the hash of their inputs
(notebook, profile, lesa code, the result files they read); an unchanged notebook is not re-run,
so a rerun after a failure resumes. A notebook that finished is copied to
results/<profile>/executed/, which is committed for the cpu and gpu profiles: `build` copies those
into book/chapters/ and builds without executing anything (execute_notebooks: off), so the book can
be published from a clone that has run nothing (.github/workflows/book.yml).

The notebooks' sources are notebooks/<name>.py (jupytext percent format) paired with the clean
notebooks/<name>.ipynb that papermill executes; the claims and the paper's numbers live in lesa.claims.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .store import PROJECT_ROOT, commit_label, file_hash, hardware_label, read_json, stable_hash, write_json

NOTEBOOKS = ("01_svd_evidence", "02_predictor", "03_expansion", "04_cpt_curves", "05_downstream")
NB_DIR = PROJECT_ROOT / "notebooks"
BOOK_DIR = PROJECT_ROOT / "book"
CHAPTERS = BOOK_DIR / "chapters"
GENERATED = BOOK_DIR / "generated"
BUILD_HTML = PROJECT_ROOT / "_build" / "html"
PAGES = ("book/intro", "book/reproduce", "book/grow", "book/scoreboard", *[f"book/chapters/{n}" for n in NOTEBOOKS],
         "book/bench", "book/limitations", "book/provenance", "book/api", "book/references")
# figures a finished notebook must have saved, whatever the results (04/05 draw only when runs exist)
REQUIRED_FIGURES = {"01_svd_evidence": ["spectra", "tsne", "pca", "similarity_by_distance_concat", "continuity_summary",
                                        "continuity_by_model"],
                    "02_predictor": ["loss_curves", "loo_r2", "loo_cosine", "loo_norm_ratio", "lambda_norms",
                                     "r2_synthetic_vs_real", "synthetic_errors"],
                    "03_expansion": ["ppl_before_training", "lesa_norm_ratio", "lesa_cos_lower", "residual_effect",
                                     "norm_ablation", "variants_before_training"],
                    "04_cpt_curves": [], "05_downstream": ["main_table"]}
# result folders a notebook reads (their files enter its input hash)
READS = {"04_cpt_curves": ("cpt",), "05_downstream": ("cpt", "downstream")}

# ------------------------------------------------------------------------------ paper numbers
# typed once, in lesa.claims; re-exported here for the pages that read them from the book module
from .claims import CLAIMS as _CLAIMS, OPT_DEUS_CPT, PAPER_MAIN  # noqa: E402,F401

# claim id -> (statement, notebook that judges it)
CLAIMS = {c.id: (c.statement, c.notebook) for c in _CLAIMS.values()}


class BookError(RuntimeError):
    pass


# ------------------------------------------------------------------------------ run
def publish(executed: Path, profile: str) -> Path:
    """Copy a finished notebook to results/<profile>/executed/ with papermill's absolute paths made
    relative to the checkout (no machine-specific paths in what is committed and published)."""
    from .store import atomic_write_text, shown

    nb = json.loads(executed.read_text())
    for cell in nb.get("cells", []):          # papermill's injected parameters: not part of the page
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    pm_meta = nb.get("metadata", {}).get("papermill", {})
    for k in ("input_path", "output_path"):
        if pm_meta.get(k):
            pm_meta[k] = shown(pm_meta[k])
    dst = published_dir(profile) / executed.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return dst


def notebook_sync_problems(name: str, nb_dir: Path = NB_DIR) -> list[str]:
    """Why notebooks/<name>.ipynb is not the clean twin of its source notebooks/<name>.py (jupytext
    percent format): different cells, sources or tags, outputs or execution counts, missing pairing.
    Empty when in sync. Fix with `jupytext --sync notebooks/<name>.py`."""
    import jupytext
    import nbformat

    py, ipynb = Path(nb_dir) / f"{name}.py", Path(nb_dir) / f"{name}.ipynb"
    if not py.exists() or not ipynb.exists():
        return [f"{name}: missing {py.name if not py.exists() else ipynb.name}"]
    src, nb = jupytext.read(py), nbformat.read(ipynb, as_version=4)
    problems = []
    if (nb.metadata.get("jupytext") or {}).get("formats") != "ipynb,py:percent":
        problems.append(f"{name}.ipynb: not paired (metadata jupytext.formats must be 'ipynb,py:percent')")
    if len(src.cells) != len(nb.cells):
        problems.append(f"{name}: {len(src.cells)} cells in the .py, {len(nb.cells)} in the .ipynb")
    for i, (a, b) in enumerate(zip(src.cells, nb.cells)):
        if a.cell_type != b.cell_type or a.source != b.source:
            problems.append(f"{name} cell {i}: the .ipynb differs from the .py")
        if a.metadata.get("tags", []) != b.metadata.get("tags", []):
            problems.append(f"{name} cell {i}: tags {b.metadata.get('tags', [])} in the .ipynb, "
                            f"{a.metadata.get('tags', [])} in the .py")
        if b.cell_type == "code" and (b.get("outputs") or b.get("execution_count") is not None):
            problems.append(f"{name} cell {i}: outputs or an execution count in git")
    return problems


def executed_dir(profile: str) -> Path:
    """Where papermill writes (partial executions and input stamps; not committed)."""
    d = PROJECT_ROOT / "_build" / "executed" / profile
    d.mkdir(parents=True, exist_ok=True)
    return d


def published_dir(profile: str) -> Path:
    """Finished executed notebooks of a profile, the book's source (committed for cpu and gpu)."""
    return PROJECT_ROOT / "results" / profile / "executed"


def input_hash(name: str, profile: str) -> str:
    """Hash of everything a notebook's output depends on."""
    from .profiles import CONFIG_DIR, profile_path

    from .profiles import read_profile_yaml

    parent = read_profile_yaml(profile_path(profile)).get("extends")      # its sections are part of this profile
    parts = {"notebook": file_hash(NB_DIR / f"{name}.ipynb"), "profile": file_hash(profile_path(profile)),
             "parent": file_hash(profile_path(parent)) if parent else None,
             "lesa": {p.name: file_hash(p) for p in sorted((PROJECT_ROOT / "lesa").glob("*.py"))}}
    # the longer profiles that extend this one (cpu-long of cpu) replace its CPT results once complete
    longer = [p.stem for p in sorted(CONFIG_DIR.glob("*.yaml")) if f"extends: {profile}\n" in p.read_text()]
    for sub in READS.get(name, ()):
        for prof in (profile, "gpu", *longer):
            d = PROJECT_ROOT / "results" / prof / sub
            if d.exists():
                parts[f"{prof}/{sub}"] = {str(p.relative_to(d)): (p.stat().st_size, int(p.stat().st_mtime))
                                          for p in sorted(d.rglob("*")) if p.is_file() and p.suffix in (".json", ".jsonl")}
    return stable_hash(parts)


def run(profile: str = "auto", only: list[str] | None = None, force: bool = False,
        kernel: str = "python3") -> dict:
    """Execute the notebooks with papermill for a profile; skip those whose inputs are unchanged."""
    import papermill as pm

    from .profiles import load_profile, resolve_profile

    profile = resolve_profile(profile)
    load_profile(profile)                                   # validates; clear error for gpu without CUDA
    stale = [p for n in NOTEBOOKS if not only or n in only for p in notebook_sync_problems(n)]
    if stale:
        raise BookError("notebooks/*.ipynb are not the clean twins of their notebooks/*.py sources:\n  "
                        + "\n  ".join(stale) + "\nrun `.venv/bin/jupytext --sync notebooks/*.py` (and clear outputs)")
    out_dir = executed_dir(profile)
    times_path = PROJECT_ROOT / "results" / profile / "book_run.json"
    times = read_json(times_path) if times_path.exists() else {}
    failures = []
    for name in NOTEBOOKS:
        if only and name not in only:
            continue
        h = input_hash(name, profile)
        stamp, dst = out_dir / f"{name}.stamp.json", out_dir / f"{name}.ipynb"
        if (not force and stamp.exists() and dst.exists() and read_json(stamp).get("hash") == h
                and (published_dir(profile) / dst.name).exists()):
            print(f"[book] {name}: unchanged inputs, skipped ({read_json(stamp).get('seconds')} s last time)")
            continue
        print(f"[book] {name}: executing with profile {profile} ...", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(dst), parameters={"profile": profile},
                                kernel_name=kernel, cwd=str(PROJECT_ROOT), progress_bar=False,
                                request_save_on_cell_execute=True)
        except Exception as e:  # noqa: BLE001 (papermill wraps kernel errors; keep going, fail at the end)
            failures.append(name)
            stamp.unlink(missing_ok=True)
            print(f"[book] {name}: FAILED after {time.perf_counter() - t0:.0f} s: {str(e)[-2000:]}", flush=True)
            continue
        secs = round(time.perf_counter() - t0, 1)
        publish(dst, profile)
        write_json(stamp, {"hash": h, "seconds": secs, "profile": profile,
                           "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        times[name] = {"seconds": secs, "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "cpus": os.cpu_count()}
        write_json(times_path, times)
        print(f"[book] {name}: done in {secs} s", flush=True)
    if failures:
        raise BookError(f"notebooks failed for profile {profile}: {failures} (rerun resumes; see the "
                        f"partially executed copies in {out_dir})")
    return times


# ------------------------------------------------------------------------------ scoreboard
def collect_verdicts(profile: str) -> list[dict]:
    vdir = PROJECT_ROOT / "results" / profile / "verdicts"
    found: dict[str, list[dict]] = {}
    sources: dict[str, str] = {}
    for p in sorted(vdir.glob("*.json")) if vdir.exists() else []:
        blob = read_json(p)
        for v in blob["verdicts"]:
            found.setdefault(v["claim"], []).append(v)
            sources[v["claim"]] = blob.get("source_profile") or profile
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


VERDICT_ORDER = ("reproduced", "partially reproduced", "inconclusive", "not reproduced", "not testable offline",
                 "not yet run")


def verdict_counts(rows: list[dict]) -> dict[str, int]:
    """verdict -> number of claims, in VERDICT_ORDER (unknown verdicts last)."""
    from .plots import verdict_of

    counts: dict[str, int] = {}
    for r in rows:
        counts[verdict_of(r)] = counts.get(verdict_of(r), 0) + 1
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _counts_sentence(counts: dict[str, int]) -> str:
    return ", ".join(f'<span class="verdict verdict-{_slug(v)}">{v}</span> {n}' for v, n in counts.items())


def _extra(r: dict, key: str) -> str:
    """A verdict row's budget or uncertainty as text ("" when the row has none)."""
    from .plots import fmt_num

    v = r.get(key)
    if v is None or v == "":
        return ""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {fmt_num(x) if not isinstance(x, str) else x}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_num(x) if not isinstance(x, str) else x for x in v)
    return fmt_num(v) if not isinstance(v, str) else v


def scoreboard_rows_csv(rows: list[dict], path: Path) -> Path:
    """The scoreboard as a CSV (one row per claim) for download."""
    import csv

    from .plots import verdict_of

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["claim", "statement", "verdict", "paper", "ours", "per_model", "budget", "uncertainty", "notebook",
                    "source_profile", "detail"])
        for r in rows:
            w.writerow([r["claim"], r.get("statement", ""), verdict_of(r), r.get("paper", ""), r.get("ours", ""),
                        "; ".join(f"{m}: {x}" for m, x in (r.get("per_model") or {}).items()),
                        _extra(r, "budget"), _extra(r, "uncertainty"), r.get("notebook", ""),
                        r.get("source_profile", ""), r.get("detail", "")])
    return path


def scoreboard_markdown(profile: str, rows: list[dict]) -> str:
    """The scoreboard page: counts, then one HTML table row per claim (verdict second so that it stays
    visible on a phone; colour-coded by book/_static/lesa.css), budget and uncertainty columns when the
    verdict records carry them, a CSV download, and how each verdict was decided."""
    import html as H

    from .plots import verdict_of

    counts = verdict_counts(rows)
    extras = [k for k in ("budget", "uncertainty") if any(_extra(r, k) for r in rows)]
    # a column per model for the claims judged on every model of the profile (C1-C3, C7, C8, C12c)
    models = list(dict.fromkeys(m for r in rows for m in (r.get("per_model") or {})))
    head = ["claim", "verdict", "paper", "this replication", *models, *extras, "evidence"]
    trs = []
    for r in rows:
        v = verdict_of(r)
        src = ("" if r.get("source_profile", profile) == profile
               else f" (from the <code>{H.escape(r['source_profile'])}</code> results)")
        nb = r.get("notebook", "")
        cells = [f"<td><strong>{H.escape(r['claim'])}</strong> {H.escape(str(r.get('statement', '')))}</td>",
                 f'<td><span class="verdict verdict-{_slug(v)}">{H.escape(v)}</span></td>',
                 f"<td>{H.escape(str(r.get('paper', '-')))}</td>",
                 f"<td>{H.escape(str(r.get('ours', '-')))}{src}</td>",
                 *[f"<td>{H.escape(str((r.get('per_model') or {}).get(m, '–')))}</td>" for m in models],
                 *[f"<td>{H.escape(_extra(r, k)) or '–'}</td>" for k in extras],
                 f'<td><a href="chapters/{H.escape(nb)}.html">ch. {H.escape(nb[:2].lstrip("0"))}</a></td>'
                 if nb else "<td>–</td>"]
        trs.append(f'<tr id="claim-{_slug(r["claim"])}" class="verdict-row-{_slug(v)}">' + "".join(cells) + "</tr>")
    table = ('<div class="lesa-table-wrap"><table class="lesa-table scoreboard"><thead><tr>'
             + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>" + "".join(trs) + "</tbody></table></div>")
    missing = [k for k in ("budget", "uncertainty") if k not in extras]
    lines = ["# Claims scoreboard", "",
             *(["```{warning}", "Profile `smoke` uses a tiny **random** model: these verdicts only show that every "
                "code path runs. They say nothing about LESA; see a `cpu` or `gpu` build for evidence.", "```", ""]
               if profile == "smoke" else []),
             f"{len(rows)} claims: {_counts_sentence(counts)}.", "",
             "Each verdict is computed by the chapter linked in its row, from that chapter's results. The paper's "
             "values come from secondary summaries of the paper ({doc}`limitations`). On a narrow screen, scroll the "
             "table sideways.", "",
             table, "",
             *([f"*The verdict records of this build carry no {' or '.join(missing)}; those columns are left out.*", ""]
               if missing else []),
             f"Download the scoreboard: {{download}}`scoreboard.csv <generated/scoreboard.csv>` (one row per claim, "
             f"with how each verdict was decided), written from `results/{profile}/verdicts/` by "
             f"`python -m lesa.book build --profile {profile}`.", "",
             "## How each verdict was decided", ""]
    for r in rows:
        if r.get("detail"):
            lines.append(f"- **{r['claim']}**: {_cell(r['detail'])}")
    return "\n".join(lines) + "\n"


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
_COLOUR_NAMES = {"reproduced": "green", "partially reproduced": "amber", "inconclusive": "amber", "not reproduced": "red",
                 "not testable offline": "dark grey", "not yet run": "light grey"}


def summary_markdown(profile: str, rows: list[dict]) -> str:
    """The landing page's answer, generated: the verdict counts, the summary figure (written beside it
    by plots.scoreboard_figure) with a numbered caption, and the scale of this build."""
    counts = verdict_counts(rows)
    n_repro = counts.get("reproduced", 0)
    legend = "; ".join(f"{_COLOUR_NAMES.get(v, 'grey')}: {v}" for v in counts)
    split = [c for c in CLAIMS if c[-1].isalpha()]
    lines = [f"**The answer** (this build: profile `{profile}`). Of the {len(rows)} claims tested (the paper's "
             f"C1–C12, with {split[0][:-1]} split into its {len(split)} ablations): " + _counts_sentence(counts) + ".", ""]
    if profile == "smoke":
        lines += ["```{warning}", "Profile `smoke` uses a tiny **random** model: these verdicts only show that every code "
                  "path runs and say nothing about LESA.", "```", ""]
    lines += [":::{figure} generated/summary.png", ":name: fig-summary",
              f":alt: Table of the {len(rows)} claims with the paper's value, this replication's value and a coloured "
              f"verdict; {n_repro} reproduced.", ":width: 100%", "",
              "Every claim of the paper: what it says, the paper's value, ours, and the verdict computed by the chapter "
              f"that tests it ({legend}). Generated from "
              f"`results/{profile}/verdicts/`; the {{doc}}`scoreboard <scoreboard>` has the same rows as a table, with "
              "links to the evidence.", ":::", "", scale_sentence(profile), ""]
    return "\n".join(lines) + "\n"


def scale_sentence(profile: str) -> str:
    """The scale caveat of a build, from its profile and its CPT runs' summaries (never typed)."""
    from .claims import PAPER_HOURS
    from .plots import fmt_num
    from .profiles import load_profile

    model = (load_profile(profile, check_device=False).get("model") or {}).get("name", profile)
    runs = [read_json(p) for p in sorted((PROJECT_ROOT / "results" / profile / "cpt").glob("*/summary.json"))]
    grown = next((r for r in runs if (r.get("growth") or {}).get("target_layers")), None)
    shape = (f" grown from {grown['growth']['source_layers']} to {grown['growth']['target_layers']} layers"
             if grown else "")
    tokens = sorted({r.get("tokens") for r in runs if r.get("tokens")})
    steps = sorted({r.get("steps") for r in runs if r.get("steps")})
    span = lambda xs: fmt_num(xs[0]) if len(xs) == 1 else f"{fmt_num(xs[0])} to {fmt_num(xs[-1])}"  # noqa: E731
    train = (f", each continual pre-training run {span(steps)} steps ({span(tokens)} tokens)" if tokens and steps
             else ", compared before training only (no continual pre-training runs in this build)")
    return (f"**Scale.** These verdicts come from `{model}`{shape}{train}; the paper grows Llama-3-8B from 32 to 48 layers "
            f"and trains it for 6,000 steps on Wikipedia ({fmt_num(PAPER_HOURS['lesa'])} hours for LESA). *Not reproduced* here means "
            "\"not at this scale, with these controls\", "
            "not \"false\" ({doc}`limitations`).")


def results_sources_markdown(profile: str) -> str:
    """Which committed result folders exist, for the reproduce page (never claims a folder that is absent)."""
    res = PROJECT_ROOT / "results"
    have = [p for p in ("cpu", "gpu") if (res / p / "executed").exists()]
    lines = []
    if have:
        lines.append("Executed notebooks are committed for profile" + ("s " if len(have) > 1 else " ")
                     + " and ".join(f"`{p}` (`results/{p}/executed/`)" for p in have) + ".")
    else:
        lines.append("No executed notebooks are committed yet.")
    if not (res / "gpu").exists():
        lines.append("There are no `gpu` results yet: on a CPU machine, the CPT curves (chapter 4) and downstream "
                     "evaluation (chapter 5) show the `cpu` profile's own short CPT runs.")
    else:
        lines.append("Chapters whose results need a GPU (chapters 4 and 5) render the committed `results/gpu/` files "
                     "on a CPU machine and say so at the top of the page.")
    return " ".join(lines) + "\n"


def run_times_markdown(profile: str) -> str:
    p = PROJECT_ROOT / "results" / profile / "book_run.json"
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
    return "\n".join(lines) + "\n"


def _versions_key(prov: dict) -> tuple:
    return (("python", prov.get("python")), *sorted((prov.get("versions") or {}).items()))


def provenance_markdown(profile: str) -> str:
    """How each figure and number of a build was produced, from the result files only: per notebook its
    figures (manifest.json), the claims it judged (verdicts/*.json with their provenance: profile of the
    results, commit, hardware, versions, UTC time) and its wall-clock (book_run.json); the CPT runs
    (cpt/*/summary.json) and downstream records (downstream/<run>/*.json) the notebooks read."""
    from .plots import fmt_num

    res = PROJECT_ROOT / "results"
    root = res / profile
    times = read_json(root / "book_run.json") if (root / "book_run.json").exists() else {}
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
             "## Notebooks: figures and verdicts", "",
             "| notebook | figures | claims judged | commit | hardware | verdicts written (UTC) | wall-clock |",
             "|---|---|---|---|---|---|---|"]
    sources = {profile}
    for n in NOTEBOOKS:
        man = root / n / "manifest.json"
        figs = [Path(f).stem for f in read_json(man)["figures"]] if man.exists() else []
        vpath = root / "verdicts" / f"{n}.json"
        v = read_json(vpath) if vpath.exists() else {}
        prov = v.get("provenance") or {}
        note(prov, f"notebook {n[:2]}")
        src = v.get("source_profile") or profile
        sources.add(src)
        t = times.get(n)
        wall = f"{t['seconds']} s on {t.get('cpus', '?')} CPUs" if t else "not run"
        lines.append(f"| {{doc}}`{n} <chapters/{n}>` | {', '.join(f'`{f}`' for f in figs) or '-'} | "
                     f"{', '.join(r['claim'] for r in v.get('verdicts', [])) or '-'}"
                     f"{'' if src == profile else f' (from the `{src}` results)'} | "
                     f"{commit_label(prov)} | {hardware_label(prov.get('hardware'))} | "
                     f"{prov.get('time_utc', '-')} | {wall} |")
    lines += ["", f"Figures are saved under `results/{profile}/<notebook>/figures/` (names above, `.png`) and listed in "
              "each notebook's `manifest.json`; verdicts in `results/" + profile + "/verdicts/<notebook>.json`. "
              f"Wall-clock is the papermill run of the whole notebook (`results/{profile}/book_run.json`)."]
    for src in sorted(sources):
        runs = sorted((res / src / "cpt").glob("*/summary.json"))
        lines += ["", f"## Continual pre-training runs (`results/{src}/cpt/`)", ""]
        if not runs:
            lines.append(f"*No CPT runs recorded for profile `{src}`.*")
        else:
            lines += ["| run | method | steps | tokens | device, precision, processes | elapsed | commit | hardware "
                      "| started (UTC) |", "|---|---|---|---|---|---|---|---|---|"]
            for p in runs:
                s = read_json(p)
                prov = s.get("provenance") or {}
                note(prov, f"CPT {s.get('name', p.parent.name)}")
                lines.append(f"| `{s.get('name', p.parent.name)}` | {(s.get('growth') or {}).get('method', 'none (base)')} "
                             f"| {s.get('steps')} | {fmt_num(s.get('tokens'))} | {s.get('device')}, {s.get('precision')}, "
                             f"{s.get('world_size')} | {round(float(s.get('elapsed_s') or 0))} s | "
                             f"{commit_label(prov)} | {hardware_label(prov.get('hardware'))} | "
                             f"{prov.get('time_utc', '-')} |")
        recs = sorted((res / src / "downstream").glob("*/*.json"))
        lines += ["", f"## Downstream evaluation records (`results/{src}/downstream/`)", ""]
        if not recs:
            lines.append(f"*No downstream records for profile `{src}`.*")
            continue
        by_run: dict[str, list[dict]] = {}
        for p in recs:
            by_run.setdefault(p.parent.name, []).append(read_json(p))
        lines += ["| run | records (task: examples) | commit | hardware | written (UTC) |", "|---|---|---|---|---|"]
        for run_name, rs in by_run.items():
            provs = [r.get("provenance") or {} for r in rs]
            for pr in provs:
                note(pr, f"downstream {run_name}")
            stamps = sorted(pr.get("time_utc", "") for pr in provs if pr.get("time_utc"))
            span = f"{stamps[0]} to {stamps[-1]}" if len(set(stamps)) > 1 else (stamps[0] if stamps else "-")
            tasks = ", ".join(f"{r.get('task')}: {r.get('n_samples')}" for r in rs)
            lines.append(f"| `{run_name}` | {tasks} | "
                         f"{', '.join(sorted({commit_label(pr) for pr in provs}))} | "
                         f"{'; '.join(sorted({hardware_label(pr.get('hardware')) for pr in provs}))} | {span} |")
    lines += ["", "## Package versions", ""]
    if not used:
        lines.append(f"*No results recorded for profile `{profile}` yet.*")
    else:
        names = ["python"] + sorted({k for key in used for k, _ in key} - {"python"})
        lines += ["| " + " | ".join(names) + " | used by |", "|" + "---|" * (len(names) + 1)]
        for key, who in used.items():
            vals = dict(key)
            counts: dict[str, int] = {}
            for w in who:
                counts[w] = counts.get(w, 0) + 1
            users = ", ".join(f"{w} ({c})" if c > 1 else w for w, c in counts.items())
            lines.append("| " + " | ".join(str(vals.get(k, "-")) for k in names) + f" | {users} |")
    return "\n".join(lines) + "\n"


def write_generated(profile: str) -> list[dict]:
    """Everything the book shows that is computed from results: the scoreboard (page, CSV, JSON), the
    landing page's summary and figure, run times, provenance, benchmarks, which results exist."""
    rows = collect_verdicts(profile)
    (BOOK_DIR / "scoreboard.md").write_text(scoreboard_markdown(profile, rows))
    GENERATED.mkdir(parents=True, exist_ok=True)
    scoreboard_rows_csv(rows, GENERATED / "scoreboard.csv")
    write_summary_figure(rows, GENERATED / "summary.png")
    (GENERATED / "summary.md").write_text(summary_markdown(profile, rows))
    (GENERATED / "links.md").write_text(links_markdown())
    (GENERATED / "results_sources.md").write_text(results_sources_markdown(profile))
    (GENERATED / "run_times.md").write_text(run_times_markdown(profile))
    (GENERATED / "profile.md").write_text(f"This build shows profile **`{profile}`**.\n")
    (GENERATED / "provenance.md").write_text(provenance_markdown(profile))
    from .bench import bench_markdown                      # results/bench/*.json, whatever the profile

    (GENERATED / "bench.md").write_text(bench_markdown())
    write_json(PROJECT_ROOT / "results" / profile / "scoreboard.json", {"profile": profile, "claims": rows})
    return rows


def write_summary_figure(rows: list[dict], path: Path) -> Path:
    """The landing page's figure (plots.scoreboard_figure), drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plots

    plots.setup()
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


# ------------------------------------------------------------------------------ build + check
def build(profile: str = "auto", strict: bool = True) -> Path:
    from .profiles import resolve_profile

    profile = resolve_profile(profile)
    src = published_dir(profile)
    missing = [n for n in NOTEBOOKS if not (src / f"{n}.ipynb").exists()]
    if missing:
        raise BookError(f"no executed notebooks {missing} for profile {profile} in {src}: "
                        f"run `python -m lesa.book run --profile {profile}` first (`make replicate` does both)")
    if CHAPTERS.exists():
        shutil.rmtree(CHAPTERS)
    CHAPTERS.mkdir(parents=True)
    for n in NOTEBOOKS:
        shutil.copy2(src / f"{n}.ipynb", CHAPTERS / f"{n}.ipynb")
    write_generated(profile)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(PROJECT_ROOT), "--all"]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    env = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    print("[book] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{log[-6000:]}")
    check(profile)
    warns = reader_warnings()
    if warns:
        print(f"[book] {len(warns)} reader problems (`python -m lesa.book check --profile {profile}` fails on them):\n  "
              + "\n  ".join(warns[:20]) + ("\n  ..." if len(warns) > 20 else ""), flush=True)
    print(f"[book] built {BUILD_HTML / 'book' / 'intro.html'}")
    return BUILD_HTML


_EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:", "ftp:", "//")


def _scan_html(path: Path) -> tuple[list[str], set[str]]:
    """(every href/src value, every id/anchor name) of one HTML page."""
    from html.parser import HTMLParser

    links: list[str] = []
    ids: set[str] = set()

    class Scan(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for k, v in attrs:
                if v is None:
                    continue
                if k in ("href", "src"):
                    links.append(v.strip())
                elif k == "id" or (k == "name" and tag == "a"):
                    ids.add(v)

    Scan(convert_charrefs=True).feed(path.read_text(encoding="utf-8", errors="replace"))
    return links, ids


def check_links(html_root: Path = BUILD_HTML) -> list[str]:
    """Broken internal links of a built site: every relative `href`/`src` in `html_root/**/*.html` must
    name an existing file (query strings dropped; a folder means its index.html), and every `#anchor`
    must be an `id` (or `<a name>`) in the page it points to. External links (http, https, mailto, ...)
    are not followed. Returns one line per broken link, empty when all resolve."""
    from urllib.parse import unquote

    html_root = Path(html_root).resolve()
    # pages only: _static/ holds the theme's Jinja macro files (*.html) that are never served as pages
    pages = [p.resolve() for p in sorted(html_root.rglob("*.html")) if "_static" not in p.relative_to(html_root).parts]
    scanned: dict[Path, tuple[list[str], set[str]]] = {}

    def scan(p: Path) -> tuple[list[str], set[str]]:
        if p not in scanned:
            scanned[p] = _scan_html(p)
        return scanned[p]

    broken = []
    for page in pages:
        for link in scan(page)[0]:
            if not link or link == "#" or link.lower().startswith(_EXTERNAL):
                continue
            target, _, frag = link.partition("#")
            target = unquote(target.split("?", 1)[0])
            if not target:
                dest = page
            elif target.startswith("/"):
                dest = (html_root / target.lstrip("/")).resolve()
            else:
                dest = (page.parent / target).resolve()
            if dest.is_dir():
                dest = dest / "index.html"
            where = f"{page.relative_to(html_root)}: {link}"
            if not dest.is_file():
                broken.append(f"{where} (no file {dest.relative_to(html_root) if dest.is_relative_to(html_root) else dest})")
            elif frag and dest.suffix == ".html" and unquote(frag) not in scan(dest)[1]:
                broken.append(f"{where} (no anchor #{unquote(frag)} in {dest.relative_to(html_root)})")
    return broken


def check(profile: str, reader: bool = False, shots: bool = False) -> dict:
    """Every page of the toc has its HTML; every figure a notebook saved exists, is non-empty, and
    is rendered (as an image) in the page; the required figures are among them; no internal link or
    anchor of the built site is broken (check_links). With `reader`, also what a reader would trip
    over (lesa.bookcheck: raw Markdown tables, log lines and reprs in outputs, images that are not
    numbered, captioned figures or whose alt text is a path); with `shots`, headless-Chromium
    screenshots of the landing and scoreboard pages at desktop and phone width must not be blank."""
    problems, report = [], {}
    for page in PAGES:
        html = BUILD_HTML / f"{page}.html"
        if not html.exists() or html.stat().st_size < 500:
            problems.append(f"page {page}: {html} missing or empty")
    for n in NOTEBOOKS:
        man = PROJECT_ROOT / "results" / profile / n / "manifest.json"
        if not man.exists():
            problems.append(f"{n}: no manifest {man} (notebook did not finish)")
            continue
        figs = read_json(man)["figures"]
        names = {Path(f).stem for f in figs}
        for f in figs:
            p = PROJECT_ROOT / f
            if not p.exists() or p.stat().st_size < 1000:
                problems.append(f"{n}: figure {f} missing or empty")
        for req in REQUIRED_FIGURES[n]:
            if req not in names:
                problems.append(f"{n}: required figure {req!r} was not saved")
        html = BUILD_HTML / "book" / "chapters" / f"{n}.html"
        if html.exists():
            n_img = html.read_text(errors="replace").count("<img")
            if n_img < len(figs):
                problems.append(f"{n}: page shows {n_img} images but the notebook saved {len(figs)} figures")
            report[n] = {"figures": len(figs), "images_in_page": n_img}
    if BUILD_HTML.exists():
        broken = check_links(BUILD_HTML)
        problems += [f"broken link {b}" for b in broken]
        report["links"] = {"broken": len(broken)}
    if reader and BUILD_HTML.exists():
        from .bookcheck import check_site

        found = check_site(BUILD_HTML)
        problems += found
        report["reader"] = {"problems": len(found)}
    if shots and BUILD_HTML.exists():
        from .bookcheck import screenshots

        files, found = screenshots(BUILD_HTML, PROJECT_ROOT / "_build" / "screenshots")
        problems += found
        report["screenshots"] = [str(f.relative_to(PROJECT_ROOT)) for f in files]
    if problems:
        raise BookError(f"book check failed ({len(problems)} problems):\n  " + "\n  ".join(problems))
    return report


def reader_warnings() -> list[str]:
    """The reader checks of lesa.bookcheck on the built site, as warnings (the build does not fail on
    them; `python -m lesa.book check` does)."""
    from .bookcheck import check_site

    return check_site(BUILD_HTML) if BUILD_HTML.exists() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.book", description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["run", "build", "all", "check", "scoreboard"])
    ap.add_argument("--profile", default="auto", help="smoke | cpu | gpu | auto (gpu with CUDA, else cpu)")
    ap.add_argument("--only", nargs="*", default=None, help="run only these notebooks (names without .ipynb)")
    ap.add_argument("--force", action="store_true", help="re-execute even when inputs are unchanged")
    ap.add_argument("--no-strict", action="store_true", help="build without --warningiserror")
    ap.add_argument("--screenshots", action="store_true",
                    help="check: also screenshot the landing and scoreboard pages in headless Chromium (desktop and "
                         "phone width, _build/screenshots/) and fail when one is blank")
    a = ap.parse_args(argv)
    from .profiles import resolve_profile

    profile = resolve_profile(a.profile)
    if a.cmd in ("run", "all"):
        run(profile, a.only, a.force)
    if a.cmd in ("build", "all"):
        build(profile, strict=not a.no_strict)
    if a.cmd == "check":
        print(json.dumps(check(profile, reader=True, shots=a.screenshots), indent=2))
    if a.cmd == "scoreboard":
        for r in write_generated(profile):
            print(f"{r['claim']:5s} {r['verdict']:22s} {r['ours']}")
    return 0


if __name__ == "__main__":
    from .store import run_main

    sys.exit(run_main(main, user_errors=(BookError,)))
