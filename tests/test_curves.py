"""Chapter 4's computation (lesa.study.curves): which runs each verdict is judged on, the verdicts and the tables.
On the committed cpu results the package returns exactly what the published chapter wrote; on tiny fixtures the
table rules (a run beats LLaMA Pro by more than two SE; held-out reach) hold."""
import json

import pandas as pd

from lesa import PROJECT_ROOT
from lesa.plots.table import table
from lesa.study import curves as K

RESULTS = PROJECT_ROOT / "results"
PAGE = RESULTS / "cpu" / "04_cpt_curves"


def test_chapter_4_on_the_committed_results_gives_the_published_verdicts_and_tables(tmp_path):
    ch = K.cpt_chapter("cpu", RESULTS, 10, ["cpu-long"], ["gpu"])
    committed = json.loads((RESULTS / "cpu" / "verdicts" / "04_cpt_curves.json").read_text())
    assert ch["source"] == committed["source_profile"] == "cpu-long"       # the longer profile, all of it finished
    rows = committed["verdicts"]
    got = {v.claim: v for v in ch["verdicts"]}
    assert list(got) == [r["claim"] for r in rows]
    for r in rows:
        v = got[r["claim"]]
        assert (v.verdict, v.reading, v.ours) == (r["verdict"], r["reading"], r["ours"]), r["claim"]
    assert ch["c4"].source_profile == "cpu-long" and got["C4"] is ch["c4"]    # C4 on the longer LESA/LLaMA Pro runs
    comparison = json.loads((PAGE / "cpt_comparison.json").read_text())
    assert json.loads(json.dumps({"source_profile": ch["source"], **ch["comparison"]})) == comparison
    # every table, written as the notebook writes it, is the committed CSV byte for byte
    for key, name in (("vs_llama_pro", "vs_llama_pro.csv"), ("step_cost", "step_cost.csv"),
                      ("bench_table", "step_cost_bench.csv"), ("runs_table", "cpt_runs.csv")):
        table(pd.DataFrame(ch[key]), csv=tmp_path / name, index=False)
        assert (tmp_path / name).read_text() == (PAGE / name).read_text(), name
    assert len(ch["llama_pro_finals"]) == 3                     # LLaMA Pro's three data orders


def _run(method, losses, heldout, frozen=True):
    train = [{"step": i, "tokens": 100 * i, "loss": x} for i, x in enumerate(losses)]
    ev = [{"step": i, "tokens": 100 * i, "heldout_ppl": p} for i, p in heldout]
    return {"method": method, "frozen": frozen, "train": train, "eval": ev, "summary": {}, "options": {},
            "ablation": None, "completed": True}


def test_a_run_beats_llama_pro_only_below_it_by_more_than_two_se():
    lp = _run("llama_pro", [3.0 + 0.01 * (i % 3) for i in range(40)], [(0, 30.0), (39, 20.0)])
    low = _run("lesa", [2.5 + 0.01 * (i % 2) for i in range(40)], [(0, 40.0), (20, 19.0), (39, 18.0)])
    same = _run("solar", [3.0 + 0.01 * ((i + 1) % 3) for i in range(40)], [(0, 30.0), (39, 21.0)])
    runs = {"llama_pro": lp, "lesa": low, "solar": same}
    frozen = {k: {**r, "name": k} for k, r in runs.items()}
    cmp = {"final_loss": {k: 0.0 for k in runs},
           "reach_llama_pro": {"runs": {"lesa": {"tokens": 100}, "solar": None}, "target": 3.0}}
    rows = {r["run"]: r for r in K.vs_llama_pro(runs, frozen, cmp, 10)}
    lesa, solar = next(v for k, v in rows.items() if k.startswith("LESA")), next(v for k, v in rows.items() if k.startswith("SOLAR"))
    assert lesa["beats LLaMA Pro"] and lesa["loss − LLaMA Pro (end)"] < 0
    assert not solar["beats LLaMA Pro"] and solar["tokens to LLaMA Pro's final loss"] == "not reached"
    assert lesa["tokens to LLaMA Pro's final held-out PPL"] == 2000      # first evaluation at or below 20.0
    assert solar["tokens to LLaMA Pro's final held-out PPL"] == "not reached"
    assert K.vs_llama_pro(runs, {k: v for k, v in frozen.items() if k != "llama_pro"}, cmp, 10) == []


def test_the_budget_counts_every_finished_run_and_an_absent_bench_gives_no_table():
    runs = {"lesa-p0": _run("lesa", [3.0] * 3, [(0, 3.0)]), "lesa-p1": _run("lesa", [3.0] * 3, [(0, 3.0)]),
            "llama_pro": _run("llama_pro", [3.0] * 3, [(0, 3.0)])}
    for r in runs.values():
        r["eval"] = [{"step": 0, "tokens": 0, "heldout_loss": 3.0}]
    runs["lesa-p1"]["completed"] = False                # still training: the seed rule leaves it out
    logs = K.seed_logs(runs)
    assert [len(logs[m]) for m in ("lesa", "llama_pro", "solar")] == [1, 1, 0]
    b = K.budget_of({"train": runs["lesa-p0"]["train"]}, logs)
    assert b["tokens"] == 200 and b["CPT runs"].startswith("LESA 1 predictor seed, LLaMA Pro 1 data order, SOLAR 0 runs")
    assert K.budget_of(None, logs) == {} and K.bench_table(None) == []
