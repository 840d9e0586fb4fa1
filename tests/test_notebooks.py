"""The notebooks' sources: notebooks/<name>.py (jupytext percent format) is what people edit; the paired
notebooks/<name>.ipynb that papermill executes must be its clean twin. The code is linted, the cells are
tagged for the book, and no number of the paper is typed in them (they come from lesa.claims.rules)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import jupytext
import pytest

from lesa.book import run as book
from lesa.book.common import NOTEBOOKS
from lesa import PROJECT_ROOT

NB_DIR = PROJECT_ROOT / "notebooks"


def test_every_notebook_is_in_sync_with_its_source_and_clean():
    assert sorted(p.stem for p in NB_DIR.glob("*.py")) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        assert book.notebook_sync_problems(name) == [], name


def test_sync_check_catches_edits_outputs_and_tags(tmp_path):
    name = "01_svd_evidence"
    for suffix in (".py", ".ipynb"):
        shutil.copy(NB_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    assert book.notebook_sync_problems(name, tmp_path) == []
    py = tmp_path / f"{name}.py"
    py.write_text(py.read_text().replace("page.save(spectra(ev)", "page.save(spectra(ev) "))
    assert any("differs" in p for p in book.notebook_sync_problems(name, tmp_path))
    shutil.copy(NB_DIR / f"{name}.py", py)
    nb = jupytext.read(tmp_path / f"{name}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[-1].execution_count = 3
    code[-1].metadata["tags"] = []
    jupytext.write(nb, tmp_path / f"{name}.ipynb")
    problems = book.notebook_sync_problems(name, tmp_path)
    assert any("execution count" in p for p in problems) and any("tags" in p for p in problems)


def test_cells_are_tagged_for_the_book():
    for name in NOTEBOOKS:
        nb = jupytext.read(NB_DIR / f"{name}.py")
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and "remove-cell" in params[0].metadata["tags"], name
        for c in nb.cells:
            if c.cell_type == "code":
                tags = c.metadata.get("tags", [])
                assert "hide-input" in tags or "remove-cell" in tags, (name, c.source[:60])


def test_notebook_code_is_linted():
    out = subprocess.run([sys.executable, "-m", "pyflakes", *map(str, sorted(NB_DIR.glob("*.py")))],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_verdicts_come_from_lesa_claims():
    import re

    for name in NOTEBOOKS:
        src = (NB_DIR / f"{name}.py").read_text()
        assert "page.finish(verdicts" in src and "A.verdict(" not in src, name
        # a thin notebook's verdicts are judged in the lesa.study module that computes its chapter (issue 38)
        study = set(re.findall(r"from lesa\.study\.(\w+) import", src)) | set(re.findall(r"from lesa\.study import (\w+)", src))
        src += "".join((PROJECT_ROOT / "lesa" / "study" / f"{m}.py").read_text() for m in sorted(study))
        judged = {c.id for c in __import__("lesa.claims.paper", fromlist=["CLAIMS"]).CLAIMS.values() if c.notebook == name}
        for cid in judged:
            assert f'"{cid}"' in src or f"judge_{cid.lower()}(" in src, (name, cid)


def test_paper_numbers_are_typed_once_in_the_sources():
    """Numbers of the paper appear once in lesa/ and never in the notebooks' sources."""
    lesa_src = "".join(p.read_text() for p in sorted((PROJECT_ROOT / "lesa").rglob("*.py")))
    nb_src = "".join(p.read_text() for p in NB_DIR.glob("*.py"))
    for num in ("5.13", "5.44", "8.09", "64.30", "62.67", "47.86", "45.6", "56.4", "75.6", "31.57", "10.98"):
        assert lesa_src.count(num) == 1, num
        assert num not in nb_src, num
    for ratio in ("1.24", "1.66"):
        assert ratio not in lesa_src and ratio not in nb_src, ratio


@pytest.mark.parametrize("tag", ["remove-cell"])
def test_published_notebook_hides_papermills_injected_cell(tmp_path, monkeypatch, tag):
    import json

    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "profile = 'x'",
                     "outputs": [], "execution_count": 1}],
          "metadata": {"papermill": {"input_path": str(PROJECT_ROOT / "notebooks" / "a.ipynb")}}, "nbformat": 4,
          "nbformat_minor": 5}
    src = tmp_path / "a.ipynb"
    src.write_text(json.dumps(nb))
    monkeypatch.setattr(book, "published_dir", lambda profile: tmp_path / "pub")
    out = json.loads(book.publish(src, "x").read_text())
    assert tag in out["cells"][0]["metadata"]["tags"]
    assert not out["metadata"]["papermill"]["input_path"].startswith("/")
