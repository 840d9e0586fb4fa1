"""lesa.core.cachekeys: the code part of every costly cache key, found wherever its definition lives."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesa.core.cachekeys import NB_DIR, find, keys, notebook_lambdas
from lesa.core.codekey import code_key

RECORD = Path(__file__).parent / "fixtures" / "cache_keys_3848127.json"


def test_every_stage_found_once_and_keyed():
    k = keys()
    assert set(json.loads(RECORD.read_text())) == set(k)      # the same stages as recorded before the redesign
    assert all(len(v.split(": ")[-1]) == 16 for v in k.values())
    with pytest.raises(LookupError, match="no module"):
        find("no_such_lesa_function")


def test_notebook_lambda_key_is_the_code_it_calls():
    """Notebook 3's cached evaluation is keyed by the two lesa functions its lambda calls, nothing else."""
    from lesa.study import analysis as A
    from lesa.study.growth import quick_benchmarks, residual_effect

    (first, second) = notebook_lambdas(NB_DIR / "03_expansion.py")
    assert first == second == f"expansion_eval: {code_key(quick_benchmarks, residual_effect)}"
    assert notebook_lambdas(NB_DIR / "01_svd_evidence.py") == [f"svd_evidence: {code_key(A.svd_evidence)}"]
