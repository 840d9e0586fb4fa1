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
from lesa import book
from lesa.store import PROJECT_ROOT


def test_notebooks_are_clean_with_one_parameters_cell():
    for name in book.NOTEBOOKS:
        nb = nbformat.read(PROJECT_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, name
        assert 'profile: str = "smoke"' in tagged[0].source
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{name} has outputs in git"


def test_scoreboard_lists_every_claim(tmp_path, monkeypatch):
    rows = book.collect_verdicts("no-such-profile")
    assert [r["claim"] for r in rows] == list(book.CLAIMS)
    assert all(r["verdict"] == "not yet run" for r in rows)
    md = book.scoreboard_markdown("x", rows)
    assert md.count("{doc}`chapters/") == len(book.CLAIMS)


@needs_smollm2
@pytest.mark.slow
def test_smoke_book_end_to_end():
    book.run("smoke", force=True)
    for name in book.NOTEBOOKS:
        nb = nbformat.read(book.executed_dir("smoke") / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, name
        published = json.loads((book.published_dir("smoke") / f"{name}.ipynb").read_text())
        assert not published["metadata"]["papermill"]["output_path"].startswith("/"), name   # no machine paths
    book.build("smoke", strict=True)               # -W: warnings are errors; runs book.check()
    report = book.check("smoke")
    for name in ("01_svd_evidence", "02_predictor", "03_expansion"):
        assert report[name]["figures"] >= len(book.REQUIRED_FIGURES[name])
    board = json.loads((PROJECT_ROOT / "results" / "smoke" / "scoreboard.json").read_text())
    judged = {r["claim"]: r["verdict"] for r in board["claims"]}
    assert set(judged) == set(book.CLAIMS)
    for c in ("C1", "C2", "C3", "C7", "C8", "C12a", "C12c"):
        assert judged[c] in ("reproduced", "not reproduced"), c
    for c in ("C9", "C10", "C11"):
        assert judged[c] == "not testable offline"
    for page in book.PAGES:
        assert (book.BUILD_HTML / f"{page}.html").exists(), page
