"""lesa.core.layout.Results: the one place the results folders are spelled out."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lesa import PROJECT_ROOT
from lesa.core import layout
from lesa.core.layout import Results

LESA = Path(__file__).resolve().parents[1] / "lesa"


def test_every_result_has_one_place(tmp_path):
    R = Results("cpu", tmp_path)
    assert R.dir == tmp_path / "cpu"
    assert R.chapter("03_expansion") == tmp_path / "cpu" / "03_expansion"
    assert R.cpt() == tmp_path / "cpu" / "cpt" and R.cpt("lesa-p0") == tmp_path / "cpu" / "cpt" / "lesa-p0"
    assert R.downstream("lesa-p0") == tmp_path / "cpu" / "downstream" / "lesa-p0"
    assert R.verdicts() == tmp_path / "cpu" / "verdicts"
    assert R.verdicts("04_cpt_curves") == tmp_path / "cpu" / "verdicts" / "04_cpt_curves.json"
    assert R.executed() == tmp_path / "cpu" / "executed" and R.file("book_run.json") == tmp_path / "cpu" / "book_run.json"
    assert R.scale("m") == tmp_path / "cpu" / "scale" / "m.json" and R.beyond("x.json") == tmp_path / "cpu" / "beyond" / "x.json"
    assert Results("cpu").dir == PROJECT_ROOT / "results" / "cpu"           # the checkout's results/ by default
    for bad in ("", "cpu/cpt", None):
        with pytest.raises(ValueError, match="plain name"):
            Results(bad)


def test_the_default_root_is_read_when_used(tmp_path, monkeypatch):
    """A test (or a caller) points every default Results at another folder at once."""
    R = Results("smoke")
    monkeypatch.setattr(layout, "RESULTS_ROOT", tmp_path)
    assert R.verdicts("01_svd_evidence") == tmp_path / "smoke" / "verdicts" / "01_svd_evidence.json"


def test_no_module_spells_a_results_path_by_hand():
    """Outside lesa/core/layout.py no lesa module joins "results" onto a path: they all ask Results."""
    found = []
    for p in sorted(LESA.rglob("*.py")):
        if p.name == "layout.py" and p.parent.name == "core":
            continue
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r'/\s*"results"|"results"\s*/', line.split("#")[0]):
                found.append(f"{p.relative_to(LESA)}:{i}: {line.strip()}")
    assert found == [], "\n".join(found)
