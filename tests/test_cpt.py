"""The profile CPT runner end to end on the smoke profile: grow by each method, train the new
layers on the same tokens, evaluate; a second call reuses every finished run."""
import json

import pytest

from lesa.cpt import run_names
from lesa.profiles import load_profile

pytestmark = pytest.mark.slow


def test_run_names_cover_methods_budgets_seeds_and_ablation():
    cpt = {"methods": ["lesa", "base"], "budgets": [10, 20], "seeds": [0, 1], "unfrozen": ["lesa"],
           "train": {"steps": 20}}
    runs = run_names(cpt)
    assert set(runs) == {"lesa-10-seed0", "lesa-10-seed1", "lesa-20-seed0", "lesa-20-seed1",
                         "base-10-seed0", "base-20-seed0", "lesa-unfrozen"}
    assert runs["lesa-unfrozen"]["train_all"] and runs["base-10-seed0"]["train_all"]
    assert not runs["lesa-20-seed1"]["train_all"] and runs["lesa-20-seed1"]["seed"] == 1


def test_smoke_profile_cpt_end_to_end(capsys):
    from lesa.cpt import run_profile_cpt
    from lesa.data import latest_corpus
    from lesa.data import DataError

    try:
        latest_corpus(fast=True)
    except DataError:
        pytest.skip("no fast corpus: run `make data-fast`")
    summaries = run_profile_cpt("smoke")
    prof = load_profile("smoke")
    assert set(summaries) == set(prof["cpt"]["methods"])
    for name, s in summaries.items():
        assert s["steps"] == prof["cpt"]["train"]["steps"], name
    hashes = {s["data_order_hash"] for s in summaries.values()}
    assert len(hashes) == 1                                    # same tokens, same order for every method
    from lesa.store import PROJECT_ROOT

    root = PROJECT_ROOT / "results" / "smoke"
    comp = json.loads((root / "cpt" / "comparison.json").read_text())
    assert comp["same_data_order"] is True and set(comp["runs"]) == set(summaries)
    down = root / "downstream"
    for name in summaries:
        assert (down / name / "arc_easy.json").exists() and (down / name / "ppl_heldout.json").exists()
    again = run_profile_cpt("smoke")                            # finished runs are reused, not retrained
    assert {n: s["final_loss"] for n, s in again.items()} == {n: s["final_loss"] for n, s in summaries.items()}
