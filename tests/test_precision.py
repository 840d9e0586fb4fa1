"""`precision: auto` follows the hardware, resolves once to fp32 or bf16, and the smoke profile's
perplexity verdicts do not depend on which."""
import pytest

import lesa.core.precision as P
from lesa.eval import scoring as ev_scoring
from lesa.eval.protocol import PplProtocol


@pytest.fixture
def host(monkeypatch):
    """A fake CPU: its flags and how much faster the probe finds bf16."""
    def make(flags=(), speedup=1.0):
        monkeypatch.setattr(P, "cpu_flags", lambda: set(flags))
        monkeypatch.setattr(P, "bf16_probe", lambda device="cpu": {"fp32_s": speedup, "bf16_s": 1.0,
                                                                   "speedup": speedup})
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    return make


@pytest.mark.parametrize("flags,speedup,want", [
    ((), 9.0, "fp32"),                          # AVX2-only: bf16 emulated, never probed into bf16
    (("avx512f", "avx512bw"), 9.0, "fp32"),     # AVX-512 without its bf16 extension
    (("amx_bf16",), 6.0, "bf16"),               # AMX (Sapphire Rapids and later)
    (("avx512_bf16",), 1.3, "bf16"),            # AVX512-BF16 (Cooper Lake, Zen 4)
    (("amx_bf16",), 1.02, "fp32"),              # the flag, but a torch build that does not use it
])
def test_auto_resolves_by_flags_and_probe(host, flags, speedup, want):
    host(flags, speedup)
    assert P.resolve_precision("auto", "cpu") == want
    assert P.resolve_precision("fp32", "cpu") == "fp32"          # forced values are never probed
    assert P.resolve_precision("bf16", "cpu") == "bf16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        P.resolve_precision("fp16", "cpu")


def test_several_processes_decide_without_timing(host, monkeypatch):
    host(("amx_bf16",), 0.5)                    # a probe would say fp32: it must not be asked
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert P.resolve_precision("auto", "cpu") == "bf16"


def test_the_probe_is_short_and_cached_per_process():
    P._PROBES.clear()
    p = P.bf16_probe("cpu")
    assert p["fp32_s"] > 0 and p["bf16_s"] > 0 and p["speedup"] == p["fp32_s"] / p["bf16_s"]
    assert P.bf16_probe("cpu") is p


def test_protocol_and_checks_hold_the_resolved_value(host, monkeypatch):
    host(("amx_bf16",), 5.0)
    monkeypatch.setattr(ev_scoring, "bf16_supported", lambda device: True)
    proto = PplProtocol(sets=("wikitext",), precision="auto")
    assert proto.precision == "bf16" and proto.key()["precision"] == "bf16" and "auto" not in proto.sentence()
    assert ev_scoring.check_precision("auto", "cpu") == "bf16"
    host((), 5.0)
    assert PplProtocol(sets=("wikitext",), precision="auto").precision == "fp32"
    assert ev_scoring.check_precision("auto", "cpu") == "fp32"


def test_train_resolves_auto_and_keys_the_run_on_it(host, tmp_path):
    from lesa.train.trainer import TrainConfig
    from lesa.train.components import make_accelerator

    host(("amx_bf16",), 5.0)
    assert make_accelerator(TrainConfig(device="cpu", precision="auto"))[1] == "bf16"
    host((), 5.0)
    assert make_accelerator(TrainConfig(device="cpu", precision="auto"))[1] == "fp32"


# ------------------------------------------------------------------ smoke verdicts in fp32 and bf16
def _norm_ratio(grown, source, new_layers) -> float:
    """Mean Frobenius norm of the new layers' projections over their neighbours' (C12c's shrinkage)."""
    from lesa.core.arch import check_model, get_layers

    spec = check_model(grown)
    g, s = get_layers(grown, spec), get_layers(source, spec)
    ratios = []
    for k, i in enumerate(sorted(new_layers)):
        a = i - k - 1                             # the source layer below the k-th new layer
        for path in spec.projections.values():
            w = g[i].get_submodule(path).weight.norm()
            nb = (s[a].get_submodule(path).weight.norm() + s[a + 1].get_submodule(path).weight.norm()) / 2
            ratios.append(float((w / nb).detach()))
    return sum(ratios) / len(ratios)


def test_smoke_claims_give_the_same_verdicts_in_fp32_and_bf16(monkeypatch):
    """The smoke profile's model (tiny random Llama), C3's and C12c's models (LESA and LESA λ=0 over the
    profile's predictor seeds, LLaMA Pro, SOLAR, the base model), measured under the smoke protocol in fp32
    and in bf16 autocast: the perplexities differ, the verdicts do not. (bf16 support is assumed so that
    the test runs on every host: where torch emulates bf16 it rounds the same way, only slower.)"""
    from lesa.claims import rules as C
    from lesa.eval.protocol import perplexity_suite
    from lesa.grow.expand import apply_plan
    from lesa.grow.plans import build_plan
    from lesa.grow.predictor import PredictorConfig
    from lesa.study.profiles import load_profile, load_profile_model
    from lesa.eval.protocol import headline, ppl_protocol

    monkeypatch.setattr(ev_scoring, "bf16_supported", lambda device: True)
    prof = load_profile("smoke", check_device=False)
    proto = ppl_protocol(prof)
    try:
        model, tok, _ = load_profile_model(prof)
        perplexity_suite(model, tok, list(proto.sets), proto.limits, proto.max_length, proto.batch_size)
    except (OSError, ValueError) as e:                    # tokenizer or benchmark data not prepared
        pytest.skip(f"smoke model or data not available: {e}")
    L, hl = model.config.num_hidden_layers, headline(proto.sets)
    seeds, epochs = prof["predictor"]["seeds"], prof["predictor"]["epochs"]
    grown = {("base", None): model}
    for s in seeds:
        for name, lam in (("lesa", C.CODE_LAMBDA), ("lesa-lambda0", 0.0)):
            grown[(name, s)] = apply_plan(model, build_plan("lesa", L), PredictorConfig(epochs=epochs, seed=s, lam=lam),
                                          copy_weights=False, progress=False)
    for name in ("llama_pro", "solar"):
        grown[(name, None)] = apply_plan(model, build_plan(name, L), copy_weights=False, progress=False)
    new = build_plan("lesa", L).new_layers
    norms = {k: _norm_ratio(m, model, new) for k, m in grown.items() if k[0].startswith("lesa")}

    verdicts, ppls = {}, {}
    for prec in ("fp32", "bf16"):
        ppl = {k: perplexity_suite(m, tok, list(proto.sets), proto.limits, proto.max_length, proto.batch_size,
                                   precision=prec)[hl]["value"] for k, m in grown.items()}
        vals = lambda n: [v for (m, _), v in ppl.items() if m == n]
        c3 = C.judge_c3({"base": vals("base")[0], "llama_pro": vals("llama_pro")[0], "solar": vals("solar")[0],
                         "lesa": vals("lesa")}, f"{hl} perplexity")
        c12c = C.judge_c12c({0.0: [v for (m, _), v in norms.items() if m == "lesa-lambda0"],
                             C.CODE_LAMBDA: [v for (m, _), v in norms.items() if m == "lesa"]},
                            {0.0: vals("lesa-lambda0"), C.CODE_LAMBDA: vals("lesa")}, base_ppl=vals("base")[0])
        verdicts[prec], ppls[prec] = {"C3": c3.verdict, "C12c": c12c.verdict}, ppl
    assert ppls["fp32"] != ppls["bf16"]                   # bf16 autocast really ran
    assert all(abs(ppls["bf16"][k] / ppls["fp32"][k] - 1) < 0.05 for k in grown), ppls
    assert verdicts["fp32"] == verdicts["bf16"], (verdicts, ppls)
