"""The book end to end on the smoke profile: every notebook executed with papermill, the scoreboard
generated, `jupyter-book build -W` passing, every page and every saved figure present.

Needs the SmolLM2 tokenizer (`make model`); data sets that are not prepared are reported as missing
by the notebooks, not as failures. Takes a few minutes on 2 CPU cores.
"""
from __future__ import annotations

import json

import nbformat
import pytest

from conftest import needs_smollm2
from lesa.core import layout
from lesa.book import run as book
from lesa.book.common import BUILD_HTML, BookError, CLAIMS, NOTEBOOKS, PAGES, REQUIRED_FIGURES
from lesa.book.pages import collect_verdicts, provenance_markdown, scoreboard_markdown, scoreboard_rows_csv, summary_markdown
from lesa.book import pages as book_pages
from lesa import PROJECT_ROOT


def test_notebooks_are_clean_with_one_parameters_cell():
    for name in NOTEBOOKS:
        nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert 'profile: str = "smoke"' in tagged[0].source
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{name} has outputs in git"


def test_notebooks_open_with_what_they_show_and_say_where_to_run_them():
    """Issue 40, answer first: every chapter's title cell says what it shows and cites the figure that decides it by
    number; how to run it, how long it takes and on which profile are on the reproduce page, once."""
    repro = (PROJECT_ROOT / "book" / "reproduce.md").read_text()
    for needle in ("## Running one chapter", "--only 04_cpt_curves", "set `profile` there", "`smoke`"):
        assert needle in repro, needle                  # how to run one chapter, once, on the reproduce page
    for name in NOTEBOOKS:
        nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "markdown" and first.source.startswith("# "), name
        assert "{doc}`../reproduce`" in first.source and "**Time**" not in first.source, name
        assert "About this notebook" not in first.source, name
        assert "{numref}`fig-" in first.source, name         # cites the figure that decides it by number


def test_scoreboard_lists_every_claim(tmp_path, monkeypatch):
    rows = collect_verdicts("no-such-profile")
    assert [r["claim"] for r in rows] == list(CLAIMS)
    assert all(r["verdict"] == "not yet run" for r in rows)
    md = scoreboard_markdown("x", rows)
    assert md.count('href="chapters/') == len(CLAIMS)             # every claim links its chapter
    assert md.count('<span class="verdict verdict-not-yet-run">') == len(CLAIMS) + 1   # rows + counts


def test_scoreboard_shows_each_reading_defines_the_set_once_and_says_what_scale_could_change(tmp_path):
    """Issue 37: a reading column (records without one get their status's default), the readings defined once
    on the page, and for a claim not reproduced or undecided whether a larger model or more tokens could change it,
    with the independent OpT-DeUS run beside the CPT claims; a reproduced claim gets none."""
    from lesa.claims import rules as C
    from lesa.claims.verdict import READINGS

    rows = collect_verdicts("no-such-profile")
    by = {r["claim"]: i for i, r in enumerate(rows)}
    rows[by["C7a"]] = {**rows[by["C7a"]], "verdict": "reproduced", "reading": "uninformative"}
    rows[by["C3"]] = {**rows[by["C3"]], "verdict": "not reproduced"}                     # an old record: no reading
    rows[by["C5"]] = {**rows[by["C5"]], "verdict": "inconclusive", "reading": "inconclusive"}
    rows[by["C8"]] = {**rows[by["C8"]], "verdict": "reproduced"}
    md = scoreboard_markdown("x", rows)
    row = lambda c: md.split(f'id="claim-{c.lower()}"')[1].split("</tr>")[0]
    assert '<a href="#reading-uninformative">uninformative</a>' in row("C7a")
    assert "not assigned yet (chapter 3 predates readings)" in row("C3")                  # never guessed
    assert '<a href="#reading-not-tested">not tested</a>' in row("C10")
    # whether scale could change it: in the claim's collapsed block below the table (the row links to it)
    how = lambda c: md.split(f'id="how-{c.lower()}"')[1].split("</details>")[0]
    assert 'href="#how-c3"' in row("C3")
    assert C.SCALE_BUDGET["C3"] in how("C3") and "OpT-DeUS" not in how("C3")
    assert "OpT-DeUS" in how("C5") and "12.28" in how("C5")
    c8 = md.split('id="how-c8"')[1].split("</details>")[0] if 'id="how-c8"' in md else ""
    assert "could a larger model" not in c8                                          # reproduced: nothing to flip
    assert "could a larger model" in how("C3")
    for k in READINGS:                                                               # defined once, on the page
        assert md.count(f'<span id="reading-{k.replace(",", "").replace(" ", "-")}"></span>**{k}**') == 1
    assert "partially reproduced" not in md
    text = scoreboard_rows_csv(rows, tmp_path / "s.csv").read_text()
    assert "uninformative" in text and "not assigned yet" in text


def test_scoreboard_states_what_the_scale_ladder_measured(tmp_path):
    """Beside a claim not reproduced, the scoreboard says what the scale ladder (chapter 7) measured for it, from
    the committed ladder results: continuity per size for C1, LESA against SOLAR per size for C9; a smoke book
    (its own ladder not measured in tmp) gets no ladder sentence; a reproduced claim shows none."""
    from lesa.book.pages import with_ladder_notes
    from lesa.core.ledger import load_results

    rows = collect_verdicts("no-such-profile")
    by = {r["claim"]: i for i, r in enumerate(rows)}
    for c in ("C1", "C9"):
        rows[by[c]] = {**rows[by[c]], "verdict": "not reproduced"}
    rows[by["C7b"]] = {**rows[by["C7b"]], "verdict": "reproduced"}
    noted = with_ladder_notes("cpu", rows)
    ladder = load_results("scale")
    assert {"smollm2-135m", "qwen2.5-coder-0.5b"} <= set(ladder)                    # the committed ladder
    how = lambda md, c: md.split(f'id="how-{c.lower()}"')[1].split("</details>")[0] if f'id="how-{c.lower()}"' in md else ""
    md = scoreboard_markdown("cpu", noted)
    assert "continuity margin goes" in how(md, "C1") and "(135M)" in how(md, "C1")
    assert "LESA starts below SOLAR on" in how(md, "C9") and "seeds at 135M" in how(md, "C9")
    assert "scale ladder" not in how(md, "C7b")                                        # reproduced: no note shown
    assert "scale ladder" not in scoreboard_markdown("smoke", with_ladder_notes("smoke", rows)) or load_results("smoke")


def test_scoreboard_shows_per_model_verdicts_in_their_own_column(tmp_path):
    rows = collect_verdicts("no-such-profile")
    rows[0] = {**rows[0], "verdict": "inconclusive",
               "per_model": {"smollm2-135m": "reproduced: gap 0.2", "gemma3-270m": "not reproduced: gap 0.01"}}
    md = scoreboard_markdown("x", rows)
    first = md.split(f'id="claim-{rows[0]["claim"].lower()}"')[1].split("</tr>")[0]
    # one line per model in the "this replication" cell (no column per model: the table fits the text column)
    assert ("<strong>smollm2-135m</strong>: reproduced: gap 0.2<br><strong>gemma3-270m</strong>: not reproduced: "
            "gap 0.01") in first
    assert "<th>smollm2-135m</th>" not in md
    text = scoreboard_rows_csv(rows, tmp_path / "s.csv").read_text()
    assert "smollm2-135m: reproduced: gap 0.2; gemma3-270m: not reproduced" in text


@needs_smollm2
@pytest.mark.slow
def test_smoke_book_end_to_end():
    book.run("smoke", force=True)
    times = json.loads(layout.Results("smoke").file("book_run.json").read_text())
    assert {times[n]["precision"] for n in NOTEBOOKS} == {"fp32"}       # the times say what they were measured in
    for name in NOTEBOOKS:
        nb = nbformat.read(book.executed_dir("smoke") / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, name
        published = json.loads((book.published_dir("smoke") / f"{name}.ipynb").read_text())
        assert not published["metadata"]["papermill"]["output_path"].startswith("/"), name   # no machine paths
    book.build("smoke", strict=True)               # -W: warnings are errors; runs book.check()
    report = book.check("smoke")
    for name in ("01_svd_evidence", "02_predictor", "03_expansion"):
        assert report[name]["figures"] >= len(REQUIRED_FIGURES[name])
    board = json.loads((PROJECT_ROOT / "results" / "smoke" / "scoreboard.json").read_text())
    judged = {r["claim"]: r["verdict"] for r in board["claims"]}
    assert set(judged) == set(CLAIMS)
    for c in ("C1", "C3", "C7a", "C7b", "C8", "C12c"):             # judged from the notebooks' own runs
        assert judged[c] in ("reproduced", "not reproduced", "inconclusive"), c
    # C9 is judged on the profile's two families (smoke: tiny random Llama and Gemma-3), before training
    assert judged["C9"] in ("reproduced", "not reproduced", "inconclusive"), judged["C9"]
    for c in ("C2", "C4", "C6", "C12a", "C12b", "C5"):                # need CPT runs (lesa.study.cpt), not run here
        assert judged[c] in ("reproduced", "not reproduced", "inconclusive", "not yet run"), c
    for c in ("C10", "C11"):
        assert judged[c] == "not testable offline"
    for page in PAGES:
        assert (BUILD_HTML / f"{page}.html").exists(), page


def _page(path, body, css="_static/x.css"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<!DOCTYPE html><html><head><link rel='stylesheet' href='{css}'></head>"
                    f"<body>{body}</body></html>")


def test_link_checker_finds_missing_files_and_anchors(tmp_path, monkeypatch):
    site = tmp_path / "html"
    (site / "_static").mkdir(parents=True)
    (site / "_static" / "x.css").write_text("body{}")
    (site / "_static" / "macros.html").write_text("<a href=\"{{ pathto('x') }}\">theme template</a>")  # not a page
    (site / "img").mkdir()
    (site / "img" / "a.png").write_bytes(b"png")
    _page(site / "page.html", "<h2 id='sec'>Section</h2><a href='index.html'>back</a>")
    _page(site / "sub" / "index.html", "<a href='../page.html#sec'>up</a><a href='../page.html?x=1#sec'>q</a>",
          css="../_static/x.css")
    _page(site / "index.html",
          "<p id='top'></p>"
          "<a href='page.html#sec'>good</a> <a href='#top'>self</a> <a href='sub/'>folder</a>"
          "<img src='img/a.png'> <a href='https://example.org/none.html'>external</a> <a href='mailto:a@b.c'>m</a>"
          "<a href='missing.html'>missing file</a> <a href='page.html#nope'>missing anchor</a>"
          "<a href='#gone'>missing anchor here</a> <img src='img/b%20c.png'>")
    broken = book.check_links(site)
    assert len(broken) == 4, broken
    assert any("missing.html" in b and "no file" in b for b in broken)
    assert any("page.html#nope" in b and "no anchor #nope" in b for b in broken)
    assert any("#gone" in b for b in broken)
    assert any("img/b c.png" in b for b in broken)                     # %20 unquoted
    assert all(b.startswith("index.html:") for b in broken)
    # check() reports them as a BookError (pages and notebooks emptied so that only links are checked)
    monkeypatch.setattr(book, "BUILD_HTML", site)
    monkeypatch.setattr(book, "PAGES", ())
    monkeypatch.setattr(book, "NOTEBOOKS", ())
    with pytest.raises(BookError, match="broken link index.html: missing.html"):
        book.check("cpu")
    _page(site / "index.html", "<a href='page.html#sec'>good</a>")        # fixed: the check passes
    assert book.check("cpu")["links"] == {"broken": 0}


def test_provenance_page_from_result_files(tmp_path, monkeypatch):
    prov = {"commit": "0123456789abcdef0123-dirty", "python": "3.11.7",
            "versions": {"torch": "2.13.0", "transformers": "5.23.0"},
            "hardware": {"machine": "x86_64", "cpus": 16, "torch_threads": 8, "gpu": "NVIDIA H200", "gpu_count": 1},
            "time_utc": "2026-01-02T03:04:05Z"}
    root = tmp_path / "results" / "p"
    (root / "01_svd_evidence").mkdir(parents=True)
    (root / "01_svd_evidence" / "manifest.json").write_text(json.dumps(
        {"notebook": "01_svd_evidence", "figures": ["results/p/01_svd_evidence/figures/tsne.png"]}))
    (root / "verdicts").mkdir()
    (root / "verdicts" / "01_svd_evidence.json").write_text(json.dumps(
        {"profile": "p", "source_profile": "p", "verdicts": [{"claim": "C1"}], "provenance": prov}))
    (root / "book_run.json").write_text(json.dumps({"01_svd_evidence": {"seconds": 12.5, "cpus": 16,
                                                                        "time_utc": "x"}}))
    (root / "cpt" / "lesa").mkdir(parents=True)
    (root / "cpt" / "lesa" / "summary.json").write_text(json.dumps(
        {"name": "lesa", "steps": 7, "tokens": 700, "device": "cuda", "precision": "bf16", "world_size": 2,
         "elapsed_s": 9.9, "growth": {"method": "lesa"}, "provenance": {**prov, "commit": "fedcba9876543210"}}))
    (root / "downstream" / "lesa").mkdir(parents=True)
    (root / "downstream" / "lesa" / "piqa.json").write_text(json.dumps(
        {"task": "piqa", "n_samples": 100, "provenance": prov}))
    (root / "verdicts" / "04_cpt_curves.json").write_text(json.dumps(         # rendered from another profile
        {"profile": "p", "source_profile": "g", "verdicts": [{"claim": "C4"}], "provenance": prov}))
    (tmp_path / "results" / "g" / "cpt" / "base").mkdir(parents=True)
    (tmp_path / "results" / "g" / "cpt" / "base" / "summary.json").write_text(json.dumps(
        {"name": "base", "steps": 3, "provenance": prov}))
    (tmp_path / "results" / "g" / "cpt" / "solar").mkdir(parents=True)
    (tmp_path / "results" / "g" / "cpt" / "solar" / "summary.json").write_text(json.dumps(
        {"name": "solar", "steps": 3, "elapsed_s": 4.0, "growth": {"method": "solar"},
         "provenance": {**prov, "time_utc": "2026-01-02T05:00:00Z"}}))
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path / "results")   # the generated pages read results/ here
    md = provenance_markdown("p")
    assert "| C4 (from the `g` results) |" in md
    assert "## Continual pre-training runs (`results/g/cpt/`)" in md
    # what every run of a table shares is said once above it; the table keeps what differs
    assert "Same for every run: steps: 3; tokens: –; " in md and "commit: `0123456789` (tree differed" in md
    # two narrow tables per run list: what ran, and where and when
    assert "| run | method | elapsed |" in md and "| run | started (UTC) |" in md
    assert "| `base` | none (base) | 0 s |" in md and "| `solar` | solar | 4 s |" in md
    assert "| `base` | 2026-01-02 03:04:05Z |" in md and "| `solar` | 2026-01-02 05:00:00Z |" in md
    assert "`0123456789` (tree differed; files not recorded)" in md and "`fedcba9876`" in md
    assert "uncommitted changes" not in md
    assert "x86_64 CPU (model not recorded), 16 cores, 8 torch threads, 1× NVIDIA H200" in md
    assert "`tsne`" in md and "| C1 |" in md and "12.5 s on 16 CPUs" in md
    assert "| `lesa` | lesa | 7 | 700 | cuda, bf16, 2 | 10 s |" in md
    assert "| `lesa` | piqa: 100 |" in md and "| `lesa` | `0123456789` (tree differed; files not recorded) |" in md
    assert "2026-01-02T03:04:05Z" not in md                        # every stamp wraps: date, space, time
    # one column per set of package versions, one row per package
    assert "| python | 3.11.7 |" in md and "| torch | 2.13.0 |" in md and "| transformers | 5.23.0 |" in md
    assert "- Set 1 used by: notebook 01, notebook 04, CPT base, CPT solar, CPT lesa, downstream lesa." in md
    assert md.count(" <chapters/") == 2 * len(NOTEBOOKS)           # unrun notebooks too, in both notebook tables
    assert "not run" in md
    # the run-times page: notebooks, then each CPT run's training and evaluation wall-clock
    (root / "downstream" / "lesa" / "arc_easy.json").write_text(json.dumps({"task": "arc_easy", "seconds": 30.5}))
    (root / "downstream" / "lesa" / "piqa.json").write_text(json.dumps({"task": "piqa", "seconds": 20.0}))
    times = book_pages.run_times_markdown("p")
    assert "| 01_svd_evidence | 12.5 | 16 | x |" in times and "Total: 12.5 s." in times
    assert "| lesa | 7 | 10 | 0.00 | 50 | 2026-01-02T03:04:05Z |" in times and "Total: 60 s of training" in times


def test_generated_pages_are_in_the_toc():
    toc = (PROJECT_ROOT / "_toc.yml").read_text()
    for page in PAGES:
        assert f"file: {page}\n" in toc or f"root: {page}\n" in toc, page
    assert "generated/provenance.md" in (PROJECT_ROOT / "book" / "provenance.md").read_text()


def test_landing_summary_is_generated_from_verdicts_and_runs(tmp_path, monkeypatch):
    rows = [{"claim": "C1", "statement": "s", "paper": "p", "ours": "o", "verdict": "reproduced", "notebook": "01_svd_evidence"},
            {"claim": "C2", "statement": "s", "paper": "p", "ours": "o", "verdict": "not reproduced", "notebook": "03_expansion",
             "budget": {"steps": 30}, "uncertainty": "± 0.5"}]
    (tmp_path / "results" / "smoke" / "cpt" / "lesa").mkdir(parents=True)
    (tmp_path / "results" / "smoke" / "cpt" / "lesa" / "summary.json").write_text(json.dumps(
        {"steps": 12, "tokens": 12288, "growth": {"source_layers": 4, "target_layers": 6}}))
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path / "results")   # the generated pages read results/ here
    md = summary_markdown("smoke", rows)
    assert "<img" not in md and "summary.png" not in md and "{figure}" not in md    # no image of a table
    assert "with C7 into 2 and C12 into 3 parts judged separately" in md              # from the claim ids
    assert "grown from 4 to 6 layers, each continual pre-training run 12 steps (12,288 tokens)" in md
    from lesa.book import abstract as book_abstract
    abstract = book_abstract.abstract_markdown("smoke", rows)
    assert "reproduced</span> 1" in abstract and "not reproduced</span> 1" in abstract    # counts, from the rows
    assert '<table class="lesa-table lesa-stack claims-summary">' in abstract and "<img" not in abstract
    assert 'data-label="verdict"' in abstract                                        # stacks on a phone
    # numbers that are missing are said to be missing, never guessed
    assert "(C7b) has no numbers in this build" in abstract and "(C3) has no numbers" in abstract
    # a claim a longer profile's runs decided is named with that profile's budget, not this one's
    (tmp_path / "results" / "long" / "cpt" / "lesa").mkdir(parents=True)
    (tmp_path / "results" / "long" / "cpt" / "lesa" / "summary.json").write_text(json.dumps({"steps": 120, "tokens": 122880}))
    md = summary_markdown("smoke", [rows[0], {**rows[1], "source_profile": "long"},
                                         {**rows[1], "claim": "C10", "verdict": "not testable offline", "source_profile": "long"}])
    assert "grown from 4 to 6 layers, C2 from the long profile (its continual pre-training runs: 120 steps (122,880 " \
        "tokens) each);" in md and "C10" not in md.split("**Scale.**")[1] and "12,288" not in md
    board = scoreboard_markdown("smoke", rows)
    how = board.split('id="how-c2"')[1].split("</details>")[0]                    # the claim's collapsed block
    assert "<dt>budget</dt><dd>steps: 30</dd>" in how and "<dd>± 0.5</dd>" in how      # shown when recorded
    assert board.index("<th>verdict and reading</th>") < board.index("<th>the paper</th>")   # verdict second
    assert 'id="how-c1"' not in scoreboard_markdown("smoke", rows[:1])        # nothing recorded: no block


def test_scoreboard_budget_and_uncertainty_read_as_text_not_python_reprs():
    from lesa.book.pages import extra_text
    spread = {"median": 589.7775, "min": 239.157, "max": 623.146, "n": 3, "values": [623.146, 589.7775, 239.157]}
    assert extra_text(spread) == "590 (239–623, 3 runs)"
    assert extra_text({"median": 0.5, "min": 0.5, "max": 0.5, "n": 3, "values": [0.5] * 3}) == "0.5 (all 3 equal)"
    assert extra_text({"mean": -0.2937, "se": 0.02826, "n": 10, "steps": [21, 30]}) == "-0.294 ± 0.0283 (n = 10)"
    nested = extra_text({"SmolLM2-135M": {"lesa": spread, "llama_pro": {"median": 38.08, "min": 38.08, "max": 38.08, "n": 1},
                                          "lesa_vs": {"solar": "higher"}}, "CPT seeds": 1, "tasks": ["arc_easy", "piqa"]})
    assert nested == ("SmolLM2-135M: (LESA: 590 (239–623, 3 runs); LLaMA Pro: 38.1; LESA vs: (SOLAR: higher)); "
                      "CPT seeds: 1; tasks: ARC-Easy, PIQA")
    # a record that stored its uncertainty as a repr, cache keys and tiny floats read as words and numbers
    assert extra_text("{'p_gap': 0.004975, 'zeros': -1.0064e-05}") == "p gap: 0.00498; zeros: ≈ 0"
    assert extra_text({"model": "smollm2-135m-197d227766850b3e"}) == "model: SmolLM2-135M"
    assert "{" not in nested and "'" not in nested


def test_run_skips_only_while_the_published_copy_is_its_own(tmp_path, monkeypatch):
    """A notebook with unchanged inputs is skipped, unless its published copy in results/ is no longer the
    one that execution wrote (e.g. a `git checkout results/` put back an older execution): then it runs again."""
    import papermill

    calls = []

    def fake_execute(src, dst, **kw):     # papermill's output: the notebook with one executed cell
        calls.append(dst)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
        nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": str(len(calls))},
                                                      execution_count=1)]
        nbformat.write(nb, dst)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(book, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path / "results")
    name = NOTEBOOKS[0]
    book.run("smoke", only=[name])
    book.run("smoke", only=[name])
    assert len(calls) == 1                                               # unchanged: skipped
    pub = tmp_path / "results" / "smoke" / "executed" / f"{name}.ipynb"
    pub.write_text(pub.read_text().replace('"1"', '"an older execution"'))
    book.run("smoke", only=[name])
    assert len(calls) == 2 and "older" not in pub.read_text()            # put back: executed again
