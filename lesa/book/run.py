"""The book: run the notebooks with papermill (cached), generate the scoreboard, build, check.

    python -m lesa.book run   --profile {smoke,cpu,gpu,auto} [--force] [--only 01_svd_evidence ...]
    python -m lesa.book build --profile P      # scoreboard + jupyter-book build -W + page/figure/link checks
    python -m lesa.book check --profile P [--screenshots]   # + what a reader trips over (lesa.book.check)
    python -m lesa.book all   --profile P      # both

Notebooks execute into _build/executed/<profile>/ with a stamp holding the hash of their inputs
(notebook, profile, lesa code, the result files they read); an unchanged notebook is not re-run,
so a rerun after a failure resumes. A notebook that finished is copied to
results/<profile>/executed/, which is committed for the cpu and gpu profiles: `build` copies those
into book/chapters/ and builds without executing anything (execute_notebooks: off), so the book can
be published from a clone that has run nothing (.github/workflows/book.yml).

The notebooks' sources are notebooks/<name>.py (jupytext percent format) paired with the clean
notebooks/<name>.ipynb that papermill executes; the claims and the paper's numbers live in lesa.claims.rules.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

# the shared layout and the generated pages have modules of their own; every name stays reachable as book.X
from .common import (BOOK_DIR, BUILD_HTML, CHAPTERS, GENERATED, NB_DIR, NOTEBOOKS, PAGES, READS,
    REQUIRED_FIGURES, BookError)
from .links import drop_missing_numrefs
from .pages import (write_generated)
from ..core.codekey import code_key
from .. import PROJECT_ROOT
from ..core.store import atomic_write_text, cache_dir, file_hash, read_json, shown, stable_hash, write_json
from ..core.layout import Results
from . import check_reader
from ..core.precision import resolve_precision
from ..study.profiles import CONFIG_DIR, PRECISION_ENV, load_profile, profile_path, read_profile_yaml, resolve_profile
from .abstract import abstract_markdown
from .check import CHAPTER_PAGES, SHOT_PAGES, check_site, chromium, screenshots
from .check_layout import check_widths

# ------------------------------------------------------------------------------ run
def publish(executed: Path, profile: str) -> Path:
    """Copy a finished notebook to results/<profile>/executed/ with papermill's absolute paths made
    relative to the checkout (no machine-specific paths in what is committed and published)."""
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
    return Results(profile).executed()


def input_hash(name: str, profile: str) -> str:
    """Hash of everything a notebook's output depends on."""
    parent = read_profile_yaml(profile_path(profile)).get("extends")      # its sections are part of this profile
    parts = {"notebook": file_hash(NB_DIR / f"{name}.ipynb"), "profile": file_hash(profile_path(profile)),
             "parent": file_hash(profile_path(parent)) if parent else None,
             "lesa": code_key(NB_DIR / f"{name}.py")}        # the lesa code the notebook reaches
    if os.environ.get(PRECISION_ENV):                        # a precision forced for this run (lesa.profiles)
        parts["precision"] = os.environ[PRECISION_ENV]
    # the longer profiles that extend this one (cpu-long of cpu) replace its CPT results once complete
    longer = [p.stem for p in sorted(CONFIG_DIR.glob("*.yaml")) if f"extends: {profile}\n" in p.read_text()]
    for sub in READS.get(name, ()):
        for prof in (profile, "gpu", *longer):
            d = Results(prof).dir / sub
            if d.exists():
                parts[f"{prof}/{sub}"] = {str(p.relative_to(d)): (p.stat().st_size, int(p.stat().st_mtime))
                                          for p in sorted(d.rglob("*")) if p.is_file() and p.suffix in (".json", ".jsonl")}
    return stable_hash(parts)


def run(profile: str = "auto", only: list[str] | None = None, force: bool = False,
        kernel: str = "python3") -> dict:
    """Execute the notebooks with papermill for a profile; skip those whose inputs are unchanged."""
    import papermill as pm

    profile = resolve_profile(profile)
    prof = load_profile(profile)                            # validates; clear error for gpu without CUDA
    # the times below depend on it (bf16 is several times faster or slower than fp32 depending on the CPU)
    precision = resolve_precision(prof["protocol"].get("precision", "fp32"), "cuda" if prof["requires_cuda"] else "cpu")
    stale = [p for n in NOTEBOOKS if not only or n in only for p in notebook_sync_problems(n)]
    if stale:
        raise BookError("notebooks/*.ipynb are not the clean twins of their notebooks/*.py sources:\n  "
                        + "\n  ".join(stale) + "\nrun `.venv/bin/jupytext --sync notebooks/*.py` (and clear outputs)")
    out_dir = executed_dir(profile)
    times_path = Results(profile).file("book_run.json")
    times = read_json(times_path) if times_path.exists() else {}
    failures = []
    for name in NOTEBOOKS:
        if only and name not in only:
            continue
        h = input_hash(name, profile)
        stamp, dst = out_dir / f"{name}.stamp.json", out_dir / f"{name}.ipynb"
        pub = published_dir(profile) / dst.name
        # skipped only if the published copy is still the one this stamp wrote (a `git checkout` of results/
        # puts back an older execution that the stamp, under _build/, does not vouch for)
        last = read_json(stamp) if stamp.exists() else {}
        if (not force and last.get("hash") == h and dst.exists()
                and pub.exists() and last.get("published") == file_hash(pub)):
            print(f"[book] {name}: unchanged inputs, skipped ({last.get('seconds')} s last time)")
            continue
        print(f"[book] {name}: executing with profile {profile} ...", flush=True)
        t0, empty_cache = time.perf_counter(), not has_computed_cache()
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
        write_json(stamp, {"hash": h, "seconds": secs, "profile": profile, "published": file_hash(publish(dst, profile)),
                           "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        times[name] = timing_entry(times.get(name, {}), secs, empty_cache, cpus=os.cpu_count(), precision=precision,
                                   time_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json(times_path, times)
        print(f"[book] {name}: done in {secs} s", flush=True)
    if failures:
        raise BookError(f"notebooks failed for profile {profile}: {failures} (rerun resumes; see the "
                        f"partially executed copies in {out_dir})")
    return times


# the cache folders whose entries are computed results (not weights, data or the kernels' own settings)
COMPUTED_CACHES = ("analysis", "factors", "grow", "cpt")


def has_computed_cache() -> bool:
    """Whether the project cache holds any computed result (not on a fresh clone); stops at the first file."""
    return any(p.is_file() for d in COMPUTED_CACHES for p in cache_dir(d).rglob("*"))


def timing_entry(prev: dict, secs: float, empty_cache: bool, **extra) -> dict:
    """book_run.json's record of one execution. ``seconds`` is this execution, which may have read every costly
    value from the cache (seconds instead of an hour); ``from_scratch_s`` is what a machine without those
    caches pays, which `make replicate` estimates a fresh clone from. An execution that started from an empty
    cache sets it; any other can only raise it (the slowest execution recorded: an upper bound, since a notebook
    that ran after another one's caches were filled cannot tell which of its own values it computed)."""
    before = prev.get("from_scratch_s", prev.get("seconds"))
    scratch = secs if empty_cache or before is None else max(secs, before)
    return {"seconds": secs, "from_scratch_s": scratch, **extra}


# ------------------------------------------------------------------------------ build + check
def generate(profile: str) -> list[dict]:
    """Every generated page (lesa.book.pages.write_generated) and the landing page's abstract
    (lesa.book.abstract, book/generated/abstract.md); the verdict rows."""
    rows = write_generated(profile)
    (GENERATED / "abstract.md").write_text(abstract_markdown(profile, rows))
    return rows


def build(profile: str = "auto", strict: bool = True) -> Path:
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
        nb = json.loads((CHAPTERS / f"{n}.ipynb").read_text())
        if drop_missing_numrefs(nb):          # a figure this profile did not draw (smoke): cited in words
            (CHAPTERS / f"{n}.ipynb").write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    generate(profile)
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
    shoot_landing()
    warns = reader_warnings()
    if warns:
        print(f"[book] {len(warns)} reader problems (`python -m lesa.book check --profile {profile}` fails on them):\n  "
              + "\n  ".join(warns[:20]) + ("\n  ..." if len(warns) > 20 else ""), flush=True)
    print(f"[book] built {BUILD_HTML / 'book' / 'intro.html'}")
    return BUILD_HTML


def shoot_landing() -> list[Path]:
    """Screenshots of the landing and scoreboard pages at desktop and phone width with every build
    (_build/screenshots/), when a headless Chromium is installed; a note otherwise."""
    try:
        chromium()
    except FileNotFoundError as e:
        print(f"[book] no screenshots: {e}", flush=True)
        return []
    files, blank = screenshots(BUILD_HTML, PROJECT_ROOT / "_build" / "screenshots", SHOT_PAGES)
    print(f"[book] screenshots: {', '.join(str(f.relative_to(PROJECT_ROOT)) for f in files)}"
          + (f"; {'; '.join(blank)}" if blank else ""), flush=True)
    return files


_EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:", "tel:", "ftp:", "//")


def _scan_html(path: Path) -> tuple[list[str], set[str]]:
    """(every href/src value, every id/anchor name) of one HTML page."""
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
    over (lesa.book.check: raw Markdown tables, log lines and reprs in outputs, images that are not
    numbered, captioned figures or whose alt text is a path); with `shots`, headless-Chromium
    screenshots of the landing and scoreboard pages at desktop and phone width must not be blank."""
    problems, report = [], {}
    for page in PAGES:
        html = BUILD_HTML / f"{page}.html"
        if not html.exists() or html.stat().st_size < 500:
            problems.append(f"page {page}: {html} missing or empty")
    for n in NOTEBOOKS:
        man = Results(profile).chapter(n) / "manifest.json"
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
    found: list[str] = []
    if reader and BUILD_HTML.exists():
        found += check_site(BUILD_HTML) + check_reader.check_site(BUILD_HTML)
    if shots and BUILD_HTML.exists():
        files, blank = screenshots(BUILD_HTML, PROJECT_ROOT / "_build" / "screenshots", SHOT_PAGES + CHAPTER_PAGES)
        problems += blank
        found += check_widths(BUILD_HTML, PAGES)
        report["screenshots"] = [str(f.relative_to(PROJECT_ROOT)) for f in files]
    if found or (reader and shots):    # with every check run, also say when the last known problem is gone
        new, known, gone = known_split(found)
        problems += new
        report["reader"] = {"problems": len(found), "known": len(known), "new": len(new)}
        if gone:
            report["reader"]["fixed, remove from book/known_reader_problems.txt"] = gone
    if problems:
        raise BookError(f"book check failed ({len(problems)} problems):\n  " + "\n  ".join(problems))
    return report


KNOWN = BOOK_DIR / "known_reader_problems.txt"


def _known_key(line: str) -> str:
    """What identifies a reader problem across builds: its page and kind, without the numbers and context in
    parentheses or quotes that move when results change."""
    return re.sub(r" in '.*$| \(.*$", "", line.strip())


def known_split(found: list[str], path: Path | None = None) -> tuple[list[str], list[str], list[str]]:
    """(new problems, known problems, known entries no longer found) against the committed list of known reader
    problems (book/known_reader_problems.txt: pages that wait for their rewrite). A known problem is reported, not
    failed; a new one fails the check, so the book can only get better."""
    path = KNOWN if path is None else Path(path)
    listed = ({_known_key(x) for x in path.read_text().splitlines() if x.strip() and not x.startswith("#")}
              if path.exists() else set())
    new = [f for f in found if _known_key(f) not in listed]
    known = [f for f in found if _known_key(f) in listed]
    gone = sorted(listed - {_known_key(f) for f in found})
    return new, known, gone


def reader_warnings() -> list[str]:
    """The reader checks of lesa.book.check on the built site, as warnings (the build does not fail on
    them; `python -m lesa.book check` does)."""
    return check_site(BUILD_HTML) + check_reader.check_site(BUILD_HTML) if BUILD_HTML.exists() else []


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
    profile = resolve_profile(a.profile)
    if a.cmd in ("run", "all"):
        run(profile, a.only, a.force)
    if a.cmd in ("build", "all"):
        build(profile, strict=not a.no_strict)
    if a.cmd == "check":
        print(json.dumps(check(profile, reader=True, shots=a.screenshots), indent=2))
    if a.cmd == "scoreboard":
        for r in generate(profile):
            print(f"{r['claim']:5s} {r['verdict']:22s} {r['ours']}")
    return 0


if __name__ == "__main__":
    from ..core.store import run_main

    sys.exit(run_main(main, user_errors=(BookError,)))
