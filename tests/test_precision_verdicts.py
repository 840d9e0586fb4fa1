"""Verdicts do not depend on precision: the smoke profile's notebooks that measure models under a precision
(3: C3, C9, C12c; 4: C2, C4, C6, C12a, C12b; 5: C5, C10, C11), with their CPT runs and evaluations, executed
once in fp32 and once in bf16 (LESA_PRECISION, lesa.study.profiles) give the same verdict and reading for every claim.
Notebooks 1 and 2 (C1, C7a, C7b, C8) measure no model under a precision: the SVD and the predictor run in
fp32 whatever the profile says, which the first test checks. Where the CPU has no bf16 units torch emulates
bf16 (same rounding, slower), which lesa refuses for users (lesa.eval.scoring.check_precision): the test lifts
that refusal in this process and in the notebooks' kernels (an IPython startup file), so it runs on every host."""
from __future__ import annotations

import json

import jupytext
import pytest

from lesa import PROJECT_ROOT
from lesa.eval import scoring as evaluate_scoring

NB_DIR = PROJECT_ROOT / "notebooks"
MEASURED = ("03_expansion", "04_cpt_curves", "05_downstream")     # evaluate or train models: precision enters
UNMEASURED = ("01_svd_evidence", "02_predictor")                    # SVD and predictor training only
TIMED = {"C6"}      # judged on wall-clock step times, which differ between two runs in one precision too


def test_notebooks_1_and_2_use_no_precision():
    for name in UNMEASURED:
        code = "\n".join(c.source for c in jupytext.read(NB_DIR / f"{name}.py").cells if c.cell_type == "code")
        for word in ("precision", "protocol", "perplexity(", "perplexity_suite", "lesa.train", "evaluate"):
            assert word not in code, (name, word)


def test_lesa_precision_replaces_every_precision_of_a_profile(monkeypatch):
    from lesa.book import run as book
    from lesa.study.profiles import PRECISION_KEYS, ProfileError, load_profile

    def precisions(prof):
        out = []
        for path in PRECISION_KEYS:
            d = prof
            for k in path:
                d = d[k]
            out.append(d.get("precision", "fp32"))        # unset: fp32 (smoke's cpt.eval)
        return out

    monkeypatch.delenv("LESA_PRECISION", raising=False)
    assert precisions(load_profile("smoke", check_device=False)) == ["fp32"] * 4
    before = book.input_hash("03_expansion", "smoke")
    monkeypatch.setenv("LESA_PRECISION", "bf16")
    assert precisions(load_profile("smoke", check_device=False)) == ["bf16"] * 4
    assert book.input_hash("03_expansion", "smoke") != before      # the book re-executes in the other precision
    monkeypatch.setenv("LESA_PRECISION", "fp16")
    with pytest.raises(ProfileError, match="LESA_PRECISION='fp16'"):
        load_profile("smoke", check_device=False)


def _verdicts(root) -> dict[str, dict]:
    out = {}
    for name in MEASURED:
        for v in json.loads((root / "smoke" / "verdicts" / f"{name}.json").read_text())["verdicts"]:
            out[v["claim"]] = {k: v.get(k) for k in ("verdict", "reading")}
    return out


def _allow_emulated_bf16(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(evaluate_scoring, "bf16_supported", lambda device: True)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-bf16.py").write_text("import lesa.eval.scoring as s\ns.bf16_supported = lambda device: True\n")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))


@pytest.mark.slow          # the smoke profile's tokenizer and data; about 2 x 1.5 min on 2 cores (15 min on a shared core)
def test_every_smoke_verdict_is_the_same_in_fp32_and_bf16(tmp_path, monkeypatch):
    import papermill as pm

    from lesa.study.cpt import run_profile_cpt

    _allow_emulated_bf16(tmp_path, monkeypatch)
    verdicts, records = {}, {}
    for prec in ("fp32", "bf16"):
        monkeypatch.setenv("LESA_PRECISION", prec)         # every precision of the profile (kernels inherit it)
        root = tmp_path / prec / "results"
        try:
            run_profile_cpt("smoke", results_root=root, ckpt_root=tmp_path / prec / "ckpt")
        except (OSError, ValueError) as e:                  # tokenizer or corpus not prepared
            pytest.skip(f"smoke model or data not available: {e}")
        for name in MEASURED:
            pm.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(tmp_path / prec / f"{name}.ipynb"),
                                parameters={"profile": "smoke", "results_root": str(root)}, kernel_name="python3",
                                cwd=str(PROJECT_ROOT), progress_bar=False)
        verdicts[prec] = _verdicts(root)
        records[prec] = {
            "cpt": {json.loads(p.read_text())["precision"] for p in (root / "smoke" / "cpt").glob("*/summary.json")},
            "expansion": json.loads((root / "smoke" / "03_expansion" / "expansion.json").read_text())["protocol"],
            "final_loss": {p.parent.name: json.loads(p.read_text())["final_loss"]
                           for p in (root / "smoke" / "cpt").glob("*/summary.json")}}
    # each ran in its precision: the records say so, and the numbers differ
    assert records["fp32"]["cpt"] == {"fp32"} and records["bf16"]["cpt"] == {"bf16"}
    assert "fp32" in str(records["fp32"]["expansion"]) and "bf16" in str(records["bf16"]["expansion"])
    assert records["fp32"]["final_loss"] != records["bf16"]["final_loss"]
    # every claim the three notebooks judge, judged (CPT ran), and the same in both precisions
    assert set(verdicts["fp32"]) == set(verdicts["bf16"]) >= {"C2", "C3", "C4", "C5", "C9", "C12a", "C12b", "C12c"}
    assert all(v["verdict"] != "not yet run" for c, v in verdicts["fp32"].items() if c in ("C2", "C4", "C5", "C12a"))
    same = {c: v for c, v in verdicts["fp32"].items() if c not in TIMED}
    assert same == {c: v for c, v in verdicts["bf16"].items() if c not in TIMED}, verdicts
