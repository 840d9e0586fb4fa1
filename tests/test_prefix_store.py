"""CPT's frozen-prefix store (lesa.train.prefix_store): a run that reads the stored output of its frozen bottom layers
trains bit for bit like one that computes them (losses, held-out losses, trained weights), across an
interruption, in fp32 and bf16, on tiny Llama and Qwen2 models and on SmolLM2-135M grown by LLaMA Pro's plan."""
from __future__ import annotations

import functools
import json

import pytest
import torch
from conftest import progression_shards, tiny_grown

from lesa.train import prefix_store as P
from lesa.train import trainer as T

SEQ = 32
NEW = [3, 5]          # lowest trained layer 3: layers 0-2 and the embeddings are the frozen prefix


tiny = functools.partial(tiny_grown, NEW)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):                   # 6 steps x 4 sequences: two epochs
    return progression_shards(tmp_path_factory.mktemp("shards"), seed=1, n_train=24, n_a=6, n_b=10, seq=SEQ)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LESA_PREFIX_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def cfg(**kw) -> T.TrainConfig:
    base = dict(steps=12, batch_size=4, lr=1e-3, warmup_frac=0.2, eval_every=4, eval_sequences=5,
                ckpt_every=4, progress=False, device="cpu", precision="fp32")
    return T.TrainConfig(**{**base, **kw})


def run(model, shards, out, **kw):
    summary = T.train(model, *shards, out, cfg(**kw))
    logs = [[json.loads(x) for x in (out / f).read_text().splitlines()] for f in ("train_log.jsonl", "eval_log.jsonl")]
    return summary, [(r["loss"], r["grad_norm"]) for r in logs[0]], [r["heldout_loss"] for r in logs[1]]


def same_weights(a, b) -> None:
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert p.dtype == q.dtype and torch.equal(p, q), n


@pytest.mark.parametrize("family,precision", [("llama", "fp32"), ("qwen2", "fp32"), ("llama", "bf16")])
def test_stored_prefix_trains_bit_for_bit_like_the_full_computation(family, precision, shards, store, tmp_path):
    full = tiny(family)
    s0, loss0, held0 = run(full, shards, tmp_path / "full", precision=precision, prefix_reuse="off")
    assert s0["prefix_reuse"]["used"] is False and not store.exists()

    writer = tiny(family)                            # computes the prefix and fills the store
    s1, loss1, held1 = run(writer, shards, tmp_path / "writer", precision=precision)
    p1 = s1["prefix_reuse"]
    assert p1["used"] and p1["depth"] == NEW[0]
    # 12 steps over 24 sequences: the second epoch's batches are other permutations, so all are new; the held-out
    # batches (5 sequences per source: 4 + 1) recur at every evaluation and are computed once
    assert p1["batches_computed"] == 12 + 2 * 2 and p1["batches_written"] == 16
    assert p1["batches_reused"] == 3 * 2 * 2            # the evaluations at steps 4, 8 and 12 reuse step 0's
    assert p1["train_batches_reused"] == 0

    reader = tiny(family)                            # another run on the same tokens: nothing computed below layer 3
    s2, loss2, held2 = run(reader, shards, tmp_path / "reader", precision=precision)
    assert s2["prefix_reuse"]["batches_computed"] == 0 and s2["prefix_reuse"]["batches_reused"] == 12 + 4 * 2 * 2
    assert s2["prefix_reuse"]["train_batches_reused"] == 12
    assert loss0 == loss1 == loss2 and held0 == held1 == held2            # bit for bit: floats compared with ==
    same_weights(full, writer)
    same_weights(full, reader)
    assert loss0[-1][0] < loss0[0][0]                 # it trained
    assert s0["run_key"] == s1["run_key"] == s2["run_key"]   # an exact option: not part of the run's identity


def test_interrupted_runs_resume_bit_for_bit(shards, store, tmp_path):
    full = tiny()
    _, loss0, held0 = run(full, shards, tmp_path / "full", prefix_reuse="off")
    part = tiny()                                    # killed after step 6 (checkpoint at 4) while filling the store
    halted = T.train(part, *shards, tmp_path / "part", cfg(halt_after=6))
    assert halted["completed"] is False and len(list(store.rglob("*.pt"))) == 6 + 2 * 2
    resumed = tiny()
    s, loss1, held1 = run(resumed, shards, tmp_path / "part")
    # from the checkpoint at step 4: steps 5 and 6 again, and the held-out sets at steps 8 and 12
    assert s["prefix_reuse"]["batches_reused"] == 2 + 2 * 2 * 2
    assert loss0 == loss1 and held0 == held1
    same_weights(full, resumed)


def test_the_store_keys_on_weights_precision_and_batch(shards, store, tmp_path):
    """Another frozen prefix (one changed weight), another precision or another batch is another entry."""
    a = tiny()
    run(a, shards, tmp_path / "a", steps=2, eval_every=0)
    b = tiny()
    with torch.no_grad():
        b.model.layers[1].mlp.up_proj.weight[0, 0] += 1e-3
    sb, _, _ = run(b, shards, tmp_path / "b", steps=2, eval_every=0)
    assert sb["prefix_reuse"]["batches_computed"] == 2 + 2 * 2          # 2 steps and the held-out sets at step 0
    sc, _, _ = run(tiny(), shards, tmp_path / "c", steps=2, eval_every=0, precision="bf16")
    assert sc["prefix_reuse"]["batches_computed"] == 2 + 2 * 2
    assert len({p.parent for p in store.rglob("*.pt")}) == 3
    x = torch.arange(8).reshape(2, 4)
    assert P.batch_key(x) != P.batch_key(x.flip(0)) != P.batch_key(x.reshape(4, 2))
    assert P.batch_key(x) == P.batch_key(x.clone())


def test_used_only_where_exact_and_clear_errors(shards, store, tmp_path):
    s, _, _ = run(tiny(), shards, tmp_path / "all", steps=2, eval_every=0, train_all=True)
    assert not s["prefix_reuse"]["used"] and "every weight trains" in s["prefix_reuse"]["why"]
    s, _, _ = run(tiny(attention_dropout=0.1), shards, tmp_path / "drop", steps=2, eval_every=0)
    assert not s["prefix_reuse"]["used"] and "dropout" in s["prefix_reuse"]["why"]
    s, _, _ = run(tiny(), shards, tmp_path / "low", steps=2, eval_every=0, new_layers=[0, 4])
    assert not s["prefix_reuse"]["used"] and "nothing frozen" in s["prefix_reuse"]["why"]
    with pytest.raises(ValueError, match="dropout"):
        T.train(tiny(attention_dropout=0.1), *shards, tmp_path / "on", cfg(steps=2, prefix_reuse="on"))
    with pytest.raises(ValueError, match="prefix_reuse"):
        cfg(prefix_reuse="yes")
    assert not store.exists()


def test_smollm2_grown_by_llama_pro_trains_bit_for_bit(smollm2, shards, store, tmp_path):
    """The real SmolLM2-135M, cut to 8 layers and grown to 10 by LLaMA Pro's plan (new layers 4 and 9 train)."""
    from lesa.grow.expand import apply_plan
    from lesa.grow.plans import build_plan

    model, _ = smollm2
    base = type(model)(model.config.__class__(**{**model.config.to_dict(), "num_hidden_layers": 8}))
    base.load_state_dict(model.state_dict(), strict=False)
    grown = [apply_plan(base, build_plan("llama_pro", 8, 10), copy_weights=True, progress=False) for _ in range(3)]
    low = grown[0].config.lesa_growth["new_layers"][0]
    assert low >= 2
    out = [run(g, shards, tmp_path / f"r{i}", steps=3, batch_size=2, eval_every=0, eval_sequences=2,
               prefix_reuse=mode) for i, (g, mode) in enumerate(zip(grown, ("off", "auto", "auto")))]
    assert out[2][0]["prefix_reuse"]["batches_computed"] == 0 and out[2][0]["prefix_reuse"]["depth"] == low
    assert out[0][1] == out[1][1] == out[2][1] and out[0][2] == out[1][2] == out[2][2]
    same_weights(grown[0], grown[2])


def test_bench_measures_the_three_runs_and_renders(shards, store, tmp_path):
    """lesa.bench prefix on a tiny model grown by the average plan (LESA's layout: 6 -> 9 layers, the lowest new
    one 3): the reading run computes nothing below it, all three loss curves are bitwise equal, the page renders."""
    from lesa.bench.prefix import bench_prefix
    from lesa.bench.report import bench_markdown

    base = tiny()
    del base.config.lesa_growth
    out = tmp_path / "bench" / "prefix_tiny_cpu.json"
    d = bench_prefix("tiny", shards[0], shards[1], batch=2, seq=16, steps=3, eval_sequences=2, out=out, base=base)
    r = d["by_precision"]["fp32"]
    assert r["layers"] == 9 and r["prefix_layers"] == 3
    assert r["runs"]["full"]["store"]["used"] is False
    assert r["runs"]["first"]["store"]["batches_computed"] == 3 + 2 and r["runs"]["reuse"]["store"]["batches_computed"] == 0
    assert r["runs"]["first"]["bitwise_equal"] and r["runs"]["reuse"]["bitwise_equal"]
    assert r["runs"]["reuse"]["step_speedup"] > 0 and len(r["runs"]["reuse"]["loss"]) == 3
    assert not store.exists()                                # the bench keeps its store in a folder of its own
    md = bench_markdown(out.parent)
    assert "CPT's frozen-prefix store" in md and "later run on the same tokens: reads it" in md
    assert "| fp32, reads |" in md and "| fp32, none |" in md                 # short run names in the tables
