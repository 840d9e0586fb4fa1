"""The frozen-aware FLOP model: hand counts, torch's FLOP counter, known ratios on constructed configs,
and the peak table (tiny random Llama configs, CPU)."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from lesa.core import flops
from lesa.core.flops import expected_ratios, flops_per_token, step_cost_ratios
from lesa.train.freeze import freeze_for_growth
from lesa.grow.plans import build_plan
from lesa.train.components import loss_fn

SEQ = 32
NEW = [2, 3]   # trainable layers in the middle of a 6-layer stack


def tiny(attn: str = "sdpa"):
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, attn_implementation=attn)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.config.lesa_growth = {"method": "test", "new_layers": NEW, "source_layers": 4, "plan": {}}
    return model


def test_flops_hand_count():
    # d=64, H=4, Q=16, KV=2, I=128, V=256, T=32; N_l = 64*64 + 2*64*32 + 64*64 + 3*64*128 = 36864,
    # d_att=64: 4*T*d_att = 8192, 12*T*d_att = 24576
    # layers 0,1 (below, forward only): 2*36864 + 8192  = 81920  each
    # layers 2,3 (trainable):           6*36864 + 24576 = 245760 each
    # layers 4,5 (frozen above):        4*36864 + 24576 = 172032 each
    # LM head frozen: 4*256*64 = 65536
    f = flops_per_token(tiny().config, NEW, SEQ)
    assert f["dims"]["N_layer"] == 36864
    assert f["per_layer"] == [81920] * 2 + [245760] * 2 + [172032] * 2
    assert f["total"] == 2 * 81920 + 2 * 245760 + 2 * 172032 + 65536 == 1_064_960
    full = flops_per_token(tiny().config, None, SEQ, train_all=True)
    assert full["total"] == 6 * (6 * 36864 + 256 * 64) + 12 * 6 * 4 * 16 * SEQ  # PaLM: 6N + 12 L H Q T


@pytest.mark.parametrize("train_all", [False, True])
def test_flops_match_a_flop_counter(train_all):
    """The formula equals the matmul FLOPs torch actually runs in one forward+backward (eager attention)."""
    m = tiny(attn="eager")
    rep = freeze_for_growth(m, train_all=train_all)
    x = torch.randint(0, 256, (2, SEQ))
    with FlopCounterMode(display=False) as fc:
        loss_fn(m, x).backward()
    want = flops_per_token(m, rep["trainable_layers"], SEQ, train_all=train_all)["total"] * x.numel()
    assert fc.get_total_flops() == want


def _cfg(L: int, vocab: int = 256) -> LlamaConfig:
    # d=64, H=4, Q=16, KV=4 (no GQA), I=128: N_layer = 4*64*64 + 3*64*128 = 40960
    return LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=L, num_attention_heads=4,
                       num_key_value_heads=4, vocab_size=vocab)


def test_known_ratios_on_constructed_configs():
    T = 16
    N, att, head = 40960, 64 * T, 256 * 64              # att = T * d_att
    c = _cfg(4)
    assert flops.dims(c)["N_layer"] == N
    # everything trains vs nothing trains (forward only): exactly 3x, layer by layer and for the head
    assert flops_per_token(c, None, T, train_all=True)["total"] == 3 * flops_per_token(c, None, T)["forward"]
    r = expected_ratios(c, {"top": ([3], False), "bottom": ([0], False), "all": (None, True),
                            "all_layers_frozen_head": ([0, 1, 2, 3], False)}, T, reference="top")
    top = 3 * (2 * N + 4 * att) + (6 * N + 12 * att) + 4 * head          # backward stops at layer 3
    bottom = (6 * N + 12 * att) + 3 * (4 * N + 12 * att) + 4 * head      # frozen layers above still pass grads
    full = 4 * (6 * N + 12 * att) + 6 * head
    assert r["top"] == 1.0
    assert r["bottom"] == pytest.approx(bottom / top)
    assert r["all"] == pytest.approx(full / top)
    assert r["all_layers_frozen_head"] == pytest.approx((full - 2 * head) / top)   # only the head's weight grad saved
    assert r["top"] < r["bottom"] < r["all_layers_frozen_head"] < r["all"]


def test_placement_alone_orders_lesa_llama_pro_solar():
    """The same number of new layers costs more the lower the first one sits: LESA's (top gaps) < LLaMA
    Pro's (spread from the bottom) < SOLAR's (whole model trains), as in the paper's 1 : 1.24 : 1.66."""
    c = _cfg(15)
    runs = {m: (list(build_plan(m, 10, 15).new_layers), m == "solar") for m in ("lesa", "llama_pro", "solar")}
    assert len(runs["lesa"][0]) == len(runs["llama_pro"][0]) == 5
    r = expected_ratios(c, runs, 16, reference="lesa")
    assert 1.0 == r["lesa"] < r["llama_pro"] < r["solar"]


def test_step_cost_ratios_put_measured_beside_the_model():
    s = {"lesa": {"step_s_median": 2.0, "flops_per_token": 100, "global_batch": 4, "seq_len": 8},
         "solar": {"step_s_median": 3.0, "flops_per_token": 150, "global_batch": 4, "seq_len": 8},
         "other-batch": {"step_s_median": 9.0, "flops_per_token": 100, "global_batch": 8, "seq_len": 8}}
    r = step_cost_ratios(s, "lesa")
    assert set(r) == {"lesa", "solar"}                    # another batch shape does not compare
    assert r["solar"] == {"step_s": 3.0, "flops_per_token": 150, "measured_ratio": 1.5, "flop_model_ratio": 1.5}
    assert step_cost_ratios(s, "missing") == {}
    # a run whose steps read the frozen-prefix store skipped layers: no measured ratio for it, nor against it
    s["solar"]["prefix_reuse"] = {"used": True, "train_batches_reused": 30}
    assert step_cost_ratios(s, "lesa")["solar"]["measured_ratio"] is None
    assert step_cost_ratios(s, "solar")["lesa"]["measured_ratio"] is None
    s["solar"]["prefix_reuse"]["train_batches_reused"] = 0           # only its held-out evaluations read it
    assert step_cost_ratios(s, "lesa")["solar"]["measured_ratio"] == 1.5


def test_peak_table_only_on_gpu_and_cites_sources(monkeypatch):
    assert flops.peak_tflops("cpu") == (None, None)
    names = [k for k, _, _ in flops.PEAK_TFLOPS_BF16]
    for i, k in enumerate(names):                          # a more specific name is never shadowed
        assert not any(earlier in k for earlier in names[:i]), k
    assert all("datasheet" in src for _, _, src in flops.PEAK_TFLOPS_BF16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 PCIe")
    assert flops.peak_tflops("cuda", "bf16")[0] == 756.5
    assert flops.peak_tflops("cuda", "fp32") == (None, None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    assert flops.peak_tflops("cuda")[0] == 989.5
