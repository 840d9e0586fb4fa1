"""CPT trainer: freezing, exact resume, DDP, bf16, train_all (tiny random Llama models, CPU)."""
from __future__ import annotations

import functools
import json

import pytest
import torch
from conftest import progression_shards, tiny_grown

from lesa.train import trainer as T
from lesa.train import components as C
from lesa.study.cpt import run_cpt_comparison
from lesa.train.freeze import freeze_for_growth

SEQ = 32
NEW = [2, 3]   # trainable layers in the middle of a 6-layer stack


tiny = functools.partial(tiny_grown, NEW)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return progression_shards(tmp_path_factory.mktemp("shards"), seed=0, n_train=64, n_a=8, n_b=8, seq=SEQ)


def cfg(**kw) -> T.TrainConfig:
    base = dict(steps=6, batch_size=4, lr=1e-3, warmup_frac=0.2, eval_every=3, eval_sequences=8,
                ckpt_every=2, progress=False, device="cpu", precision="fp32")   # auto would pick bf16 on AMX
    return T.TrainConfig(**{**base, **kw})


def rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_loss_is_next_token_cross_entropy_like_transformers():
    """_loss scores the B*(T-1) next tokens: transformers' own loss, and the sliced-logits formula."""
    model = tiny()
    x = torch.randint(0, 256, (3, SEQ))
    mean = C.loss_fn(model, x)
    torch.testing.assert_close(mean, model(input_ids=x, labels=x).loss)
    logits = model(input_ids=x).logits
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten(), reduction="sum")
    torch.testing.assert_close(C.loss_fn(model, x, "sum"), ref)
    torch.testing.assert_close(C.loss_fn(model, x, "sum") / (3 * (SEQ - 1)), mean)


@pytest.mark.parametrize("tied", [False, True])
def test_freeze_report_adds_up(tied):
    m = tiny(tie_word_embeddings=tied)
    rep = freeze_for_growth(m)
    g = rep["groups"]
    total = sum(p.numel() for p in m.parameters())
    assert rep["total_params"] == total == sum(v["params"] for v in g.values())
    assert rep["trainable_params"] == g["new_layers"]["params"] == sum(
        p.numel() for i in NEW for p in m.model.layers[i].parameters())
    assert rep["trainable_params"] + rep["frozen_params"] == total
    assert g["new_layers"]["indices"] == NEW and g["original_layers"]["indices"] == [0, 1, 4, 5]
    assert g["embed_tokens"]["params"] == 256 * 64 and g["final_norm"]["params"] == 64
    if tied:
        assert g["lm_head"] == {"params": 0, "trainable": 0, "tied_to": "embed_tokens"}
    else:
        assert g["lm_head"]["params"] == 256 * 64 and g["lm_head"]["trainable"] == 0
    # explicit indices override lesa_growth; without either it is an error
    assert freeze_for_growth(m, new_layers=[5])["trainable_layers"] == [5]
    del m.config.lesa_growth
    with pytest.raises(ValueError, match="lesa_growth"):
        freeze_for_growth(m)


def test_frozen_weights_untouched_and_optimizer_holds_only_trainable(shards, tmp_path):
    m = tiny()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    T.train(m, *shards, tmp_path / "run", cfg(steps=3, ckpt_every=0))
    for n, p in m.named_parameters():
        is_new = any(n.startswith(f"model.layers.{i}.") for i in NEW)
        assert p.requires_grad == is_new, n
        if is_new:
            assert not torch.equal(p, before[n]), f"{n} did not train"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"
            assert p.grad is None, f"gradient flowed into frozen {n}"
    opt = C.build_optimizer(m, cfg())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in m.parameters() if p.requires_grad}


def test_no_backward_below_lowest_trainable_layer():
    for ckpt in (False, True):
        m = tiny()
        rep = freeze_for_growth(m)
        if ckpt:
            C.enable_checkpointing(m.model.layers, rep["lowest_trainable_layer"])
        seen = {}
        m.model.layers[NEW[0]].register_forward_pre_hook(
            lambda mod, args, kw: seen.update(rg=(args[0] if args else kw["hidden_states"]).requires_grad),
            with_kwargs=True)
        C.loss_fn(m, torch.randint(0, 256, (2, SEQ))).backward()
        assert seen["rg"] is False
        assert all(p.grad is None for p in m.model.layers[0].parameters())


def test_exact_resume(shards, tmp_path):
    full = tmp_path / "full"
    T.train(tiny(), *shards, full, cfg())
    part = tmp_path / "part"
    halted = T.train(tiny(), *shards, part, cfg(halt_after=3))   # "killed" after step 3, ckpt at 2
    assert halted["completed"] is False and len(rows(part / "train_log.jsonl")) == 3
    summary = T.train(tiny(), *shards, part, cfg())
    a, b = rows(full / "train_log.jsonl"), rows(part / "train_log.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    assert [r["heldout_loss"] for r in rows(full / "eval_log.jsonl")] == \
        [r["heldout_loss"] for r in rows(part / "eval_log.jsonl")]
    assert a[-1]["loss"] < a[0]["loss"]
    ev = rows(full / "eval_log.jsonl")
    assert [r["step"] for r in ev] == [0, 3, 6] and set(ev[0]["by_source"]) == {"a", "b"}
    assert summary["completed"] and summary["tokens"] == 6 * 4 * SEQ
    assert summary["mfu"] is None and summary["flops_per_token"] == 1_064_960
    # the trained weights can be put back into a fresh model
    fresh = tiny()
    assert T.load_trained_weights(fresh, summary["checkpoint_dir"]) == 6


def test_a_checkpoint_of_another_run_is_not_spliced_into_committed_logs(shards, tmp_path):
    """A committed run's weights are lost and its retrain (from a different start, so another run key) is
    interrupted: resuming that checkpoint into the committed run's folder would truncate the committed logs at
    the checkpoint's step and append the retrain's steps. It stops with what to do, and the logs are kept."""
    T.train(tiny(), *shards, tmp_path / "res", cfg(), ckpt_dir=tmp_path / "ck_old")
    T.train(tiny(), *shards, tmp_path / "other", cfg(lr=5e-4, halt_after=3), ckpt_dir=tmp_path / "ck")
    before = (tmp_path / "res" / "train_log.jsonl").read_text()
    with pytest.raises(RuntimeError, match="are of another run"):
        T.train(tiny(), *shards, tmp_path / "res", cfg(lr=5e-4), ckpt_dir=tmp_path / "ck")
    assert (tmp_path / "res" / "train_log.jsonl").read_text() == before


def test_a_checkpoint_from_other_starting_weights_is_not_resumed(shards, tmp_path, capsys):
    """Same config (so the same run key), a model grown differently (here: other weights, as after retraining a
    predictor): resuming its checkpoint would continue another run. train() refuses; the profile runner's
    replace_stale trains afresh."""
    T.train(tiny(), *shards, tmp_path / "a", cfg(halt_after=3), ckpt_dir=tmp_path / "ck")
    with pytest.raises(RuntimeError, match="other starting weights"):
        T.train(tiny(seed=1), *shards, tmp_path / "a", cfg(), ckpt_dir=tmp_path / "ck")
    again = T.train(tiny(seed=1), *shards, tmp_path / "a", cfg(), ckpt_dir=tmp_path / "ck", replace_stale=True)
    assert "training afresh" in capsys.readouterr().out
    assert again["completed"] and [r["step"] for r in rows(tmp_path / "a" / "train_log.jsonl")] == list(range(1, 7))
    assert again["init_key"] == T.weights_fingerprint(tiny(seed=1)) != T.weights_fingerprint(tiny())


def test_a_run_whose_checkpoints_would_not_fit_stops_before_training(shards, tmp_path, monkeypatch):
    """Too little disk for two checkpoints: a clear error before the first step, not a half-written file later."""
    import collections
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(T.shutil, "disk_usage",
                        lambda p: collections.namedtuple("u", "total used free")(real(p).total, real(p).used, 1 << 29))
    with pytest.raises(RuntimeError, match="free disk space"):
        T.train(tiny(), *shards, tmp_path / "d", cfg(), ckpt_dir=tmp_path / "ck")
    assert not (tmp_path / "d" / "train_log.jsonl").exists() or not rows(tmp_path / "d" / "train_log.jsonl")
    monkeypatch.setattr(T.shutil, "disk_usage", real)
    assert T.train(tiny(), *shards, tmp_path / "d", cfg(), ckpt_dir=tmp_path / "ck")["completed"]


def test_committed_results_without_weights_are_retrained(shards, tmp_path, capsys):
    """A finished summary is a cache hit only together with its final checkpoint: a fresh clone has
    the committed results but not the weights, which evaluation needs, so it trains again (and
    gets the same losses); with the checkpoint present the run is reused untouched."""
    import shutil

    first = T.train(tiny(), *shards, tmp_path / "res", cfg(), ckpt_dir=tmp_path / "ck1")
    clone = tmp_path / "clone"
    shutil.copytree(tmp_path / "res", clone)                       # results/ as committed
    capsys.readouterr()
    again = T.train(tiny(), *shards, clone, cfg(), ckpt_dir=tmp_path / "ck2")
    assert "its weights are not in" in capsys.readouterr().out     # said before hours of training
    assert (tmp_path / "ck2" / "latest.json").exists()             # retrained: weights exist now
    assert [r["step"] for r in rows(clone / "train_log.jsonl")] == list(range(1, 7))   # logs not doubled
    assert [r["loss"] for r in rows(clone / "train_log.jsonl")] == [r["loss"] for r in rows(tmp_path / "res" / "train_log.jsonl")]
    assert again["run_key"] == first["run_key"]
    stamp = (clone / "train_log.jsonl").stat().st_mtime_ns
    reused = T.train(tiny(), *shards, clone, cfg(), ckpt_dir=tmp_path / "ck2")
    assert reused["completed"] and reused["run_key"] == again["run_key"]
    assert (clone / "train_log.jsonl").stat().st_mtime_ns == stamp                 # not retrained
    # a summary written by older code (without the step time) is retrained, not reused without it
    old = {k: v for k, v in reused.items() if k != "step_s_median"}
    (clone / "summary.json").write_text(json.dumps(old))
    fresh = T.train(tiny(), *shards, clone, cfg(), ckpt_dir=tmp_path / "ck2")
    assert fresh["step_s_median"] > 0 and (clone / "train_log.jsonl").stat().st_mtime_ns != stamp
    assert [r["loss"] for r in rows(clone / "train_log.jsonl")] == [r["loss"] for r in rows(tmp_path / "res" / "train_log.jsonl")]


def test_train_all_and_options(shards, tmp_path):
    m = tiny()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    s = T.train(m, *shards, tmp_path / "all", cfg(steps=2, train_all=True))
    assert s["trainable"]["frozen_params"] == 0 and s["trainable"]["lowest_trainable_layer"] == -1
    assert all(not torch.equal(p, before[n]) for n, p in m.named_parameters())
    # activation checkpointing does not change the numbers; the bf16 (GPU) path runs end to end on CPU
    a = T.train(tiny(), *shards, tmp_path / "a", cfg(steps=2))
    b = T.train(tiny(), *shards, tmp_path / "b", cfg(steps=2, grad_checkpointing=True))
    assert abs(a["final_loss"] - b["final_loss"]) < 1e-6
    c = T.train(tiny(), *shards, tmp_path / "c", cfg(steps=2, precision="bf16"))
    assert c["precision"] == "bf16" and abs(c["final_loss"] - a["final_loss"]) < 0.1


def test_comparison_same_order_and_clear_errors(shards, tmp_path):
    res = run_cpt_comparison({"lesa": tiny(seed=1), "llama_pro": lambda: tiny(seed=2)}, *shards, "cpu",
                               cfg(steps=2), results_root=tmp_path / "results", ckpt_root=tmp_path / "ck")
    assert res["lesa"]["data_order_hash"] == res["llama_pro"]["data_order_hash"]
    comp = json.loads((tmp_path / "results/cpu/cpt/comparison.json").read_text())
    assert comp["same_data_order"] and set(comp["runs"]) == {"lesa", "llama_pro"}
    assert (tmp_path / "results/cpu/cpt/lesa/summary.json").exists()
    # a changed config: the profile runner retrains over the stale checkpoint; plain train() refuses it
    again = run_cpt_comparison({"lesa": tiny(seed=1)}, *shards, "cpu", cfg(steps=2, lr=5e-4),
                               results_root=tmp_path / "results", ckpt_root=tmp_path / "ck")
    assert again["lesa"]["run_key"] != res["lesa"]["run_key"] and again["lesa"]["completed"]
    with pytest.raises(RuntimeError, match="belongs to another run"):
        T.train(tiny(seed=1), *shards, tmp_path / "z", cfg(steps=2), ckpt_dir=tmp_path / "ck/cpu/lesa")
    with pytest.raises(FileNotFoundError, match="make data"):
        T.train(tiny(), tmp_path / "nowhere", None, tmp_path / "x", cfg())
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            T.train(tiny(), *shards, tmp_path / "y", cfg(device="cuda"))


def test_two_process_ddp_matches_single_process(shards, tmp_path):
    """Same global batch over 2 CPU processes (gloo, via torchrun) gives the single-process curve."""
    import os
    import subprocess
    import sys

    tiny().save_pretrained(tmp_path / "model")
    args = ["-m", "lesa.train.trainer", "--model", str(tmp_path / "model"), "--shards", str(shards[0]),
            "--heldout", str(shards[1]), "--steps", "3", "--grad-accum", "2", "--eval-every", "2",
            "--eval-sequences", "3", "--no-progress", "--device", "cpu", "--precision", "fp32"]   # not auto: exact
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one"), "--batch-size", "4"],
                   check=True, env=env, capture_output=True)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *args,
                    "--out", str(tmp_path / "two"), "--batch-size", "2"], check=True, env=env, capture_output=True)
    one, two = rows(tmp_path / "one/train_log.jsonl"), rows(tmp_path / "two/train_log.jsonl")
    assert json.loads((tmp_path / "two/summary.json").read_text())["world_size"] == 2
    assert [r["tokens"] for r in one] == [r["tokens"] for r in two]
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(one, two)) < 1e-5
    e1, e2 = rows(tmp_path / "one/eval_log.jsonl"), rows(tmp_path / "two/eval_log.jsonl")
    assert max(abs(a["heldout_loss"] - b["heldout_loss"]) for a, b in zip(e1, e2)) < 1e-5


def test_bf16_keeps_fp32_master_weights_and_tracks_fp32(shards, tmp_path):
    """bf16 autocast: matmuls run in bf16, trainable weights and AdamW state stay fp32, frozen weights are
    stored in bf16, and the loss curve follows the fp32 one. The two trainers live in one process and are
    stepped in turn (as the precision bench does), so neither may inherit the other's precision."""
    seen = {}
    trainers = {}
    for prec in ("fp32", "bf16"):
        trainers[prec] = T.Trainer(tiny(), *shards, cfg(precision=prec), tmp_path / prec)
        layer = trainers[prec].model.model.layers[NEW[0]]
        layer.mlp.up_proj.register_forward_hook(lambda mod, i, o, p=prec: seen.__setitem__(p, o.dtype))
    losses = {"fp32": [], "bf16": []}
    for step in range(6):
        for prec, tr in trainers.items():
            losses[prec].append(tr.step(step)["loss"])
    assert seen == {"fp32": torch.float32, "bf16": torch.bfloat16}
    tr = trainers["bf16"]
    assert tr.precision == "bf16"
    for n, p in tr.model.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), n
    states = [s for s in tr.optimizer.state.values()]
    assert states and all(s[k].dtype == torch.float32 for s in states for k in ("exp_avg", "exp_avg_sq"))
    rel = [abs(a - b) / a for a, b in zip(losses["fp32"], losses["bf16"])]
    assert max(rel) < 0.02, rel
    assert losses["bf16"][-1] < losses["bf16"][0]                     # and it learns
    ev = {p: t.evaluate(6)["heldout_loss"] for p, t in trainers.items()}
    assert abs(ev["bf16"] - ev["fp32"]) / ev["fp32"] < 0.02


def test_bf16_on_a_gpu_without_it_fails_early(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 5))
    with pytest.raises(ValueError, match=r"Tesla T4 has 7\.5.*precision: fp32"):
        C.check_bf16("cuda")
    C.check_bf16("cpu")                                              # every CPU torch build runs bf16
    with pytest.raises(ValueError, match="precision"):
        T.TrainConfig(precision="fp16")
