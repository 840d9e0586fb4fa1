"""lesa.core.cachekeys: the code part of every costly cache key, found wherever its definition lives."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesa.core.cachekeys import NB_DIR, changed, find, keys, notebook_lambdas
from lesa.core.codekey import code_key
from lesa.study.analysis import svd_evidence
from lesa.study.growth import quick_benchmarks, residual_effect

RECORD = Path(__file__).parent / "fixtures" / "cache_keys_3848127.json"    # before the package redesign


def test_every_stage_found_once_and_keyed():
    k = keys()
    assert set(json.loads(RECORD.read_text())) == set(k)      # the same stages as recorded before the redesign
    assert all(len(v) == 16 for v in k.values())               # one key per stage (a split cache would show two)
    with pytest.raises(LookupError, match="no module"):
        find("no_such_lesa_function")


def test_a_cached_evaluation_is_keyed_by_the_code_it_calls():
    """Notebook 3's evaluation cache is keyed by the two functions that compute it, wherever the experiment that
    calls them lives (once a notebook lambda, now lesa.study.expansion); notebook 1's lambda by svd_evidence."""
    assert keys()["expansion_eval (cached_json)"] == code_key(quick_benchmarks, residual_effect)
    assert notebook_lambdas(NB_DIR / "01_svd_evidence.py") == [f"svd_evidence: {code_key(svd_evidence)}"]


def test_changed_names_a_costly_stage_and_ignores_a_notebooks_reach():
    rec = {"grow (costly_weights)": "a", "01_svd_evidence: reach": "b"}
    assert changed(rec, {"grow (costly_weights)": "a", "01_svd_evidence: reach": "c"}) == []
    assert changed(rec, {"grow (costly_weights)": "x", "01_svd_evidence: reach": "b"}) == ["grow (costly_weights): a -> x"]
