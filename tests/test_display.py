"""One display name per method and run, one uncertainty format (issue 40): lesa.book.display on the texts the
verdict records really hold."""
from lesa.book import display as D
from lesa.grow.methods import METHODS


def test_uniform_rewrites_every_old_format_into_one():
    # C7b's record as chapter 2 wrote it (results/cpu/verdicts/02_predictor.json)
    old = ("held-out R2 predictor -0.918 (range -0.974 to -0.894, 3 seeds) vs best trivial predictor (zeros) "
           "-1.01e-05 (range -1.01e-05 to -1.01e-05, 3 seeds); neighbour_average -0.488, copy_below -1.01")
    assert D.uniform(old) == ("held-out R2 predictor -0.918 (-0.974 to -0.894, 3 seeds) vs best trivial predictor "
                              "(zeros) ≈ 0 (all 3 seeds equal); neighbours' average -0.488, copy of the layer below -1.01")
    assert D.uniform("LLaMA Pro 3.025 (range 3.024 to 3.026, 3 data orders)") == "LLaMA Pro 3.025 (3.024–3.026, 3 data orders)"
    assert D.uniform("r2 0.2 [0.1, 0.3], norm 1 [1, 1]") == "r2 0.2 (0.1–0.3), norm 1"
    assert D.uniform("first steps -1.54 +- 0.136") == "first steps -1.54 ± 0.136"
    # settings keep their value; small measured values stay when asked (chapter 1's gaps are the measurement)
    assert D.uniform("LESA, λ = 5e-05 (the paper's)") == "LESA, λ = 5e-05 (the paper's)"
    assert D.uniform("gap -4.02e-4 | 9.61e-5", tiny=False) == "gap -4.02e-4 | 9.61e-5"
    # ids of the code by the names a reader knows; a command keeps its module
    assert D.uniform("llama_pro: lower; tasks arc_challenge, piqa; o_proj = down_proj = 0") == \
        "LLaMA Pro: lower; tasks ARC-Challenge, PIQA; o-projection = down-projection = 0"
    assert D.uniform("(counted at the lowest layer; lesa.flops), see python -m lesa.step_cost") == \
        "(counted at the lowest layer), see python -m lesa.step_cost"
    # a profile named in words, not by its config name, and no pointer into its file (chapters 3, 5 and 7's protocol
    # sentence, as the cpu profile's protocol writes it); a command keeps the name
    from lesa.eval.protocol import ppl_protocol
    from lesa.study.profiles import load_profile
    sentence = D.uniform(ppl_protocol(load_profile("cpu", check_device=False)).sentence())
    assert sentence.startswith("Perplexity protocol (the same for every model and notebook): fp32") and "`" not in sentence
    assert D.uniform("wikitext perplexity (all 62 documents, the cpu-long profile's protocol); the `cpu` profile") == \
        "wikitext perplexity (all 62 documents, the longer CPU profile's protocol); the CPU profile"
    assert D.uniform("python -m lesa.book run --profile cpu-long") == "python -m lesa.book run --profile cpu-long"


def test_names_of_methods_runs_and_variants_come_from_the_one_method_table():
    assert D.name("lesa_fp") == METHODS["lesa_fp"][0]
    assert D.name("llama_pro-seed2") == "LLaMA Pro, data order 2"
    assert D.name("lesa-unfrozen") == "LESA, all layers trained"
    variants = {"lesa_fp-0": {"method": "lesa_fp", "alpha": 0.0},
                "lesa_fp-0-spread": {"method": "lesa_fp", "alpha": 0.0, "gaps": "spread"}}
    fp = D.name("lesa_fp-0-p2", variants)
    assert fp.startswith(METHODS["lesa_fp"][0] + ", ") and fp.endswith("predictor seed 2") and "α = 0" in fp
    assert "spread" in D.name("lesa_fp-0-spread-p1", variants)          # the longest variant name wins
    assert D.name("neighbour_average") == "neighbours' average"
    assert D.name("something-else_x") == "something-else_x"             # unknown: shown as recorded, never guessed
