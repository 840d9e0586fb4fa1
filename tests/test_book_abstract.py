"""The landing page's abstract (issue 40): its sentences follow the numbers of the verdict records, links go to
the figure that decides a claim, and the recommendation says where evidence is missing."""
from lesa.book import abstract as A
from lesa.book import links as L


def spread(*v):
    return {"median": sorted(v)[len(v) // 2], "min": min(v), "max": max(v), "n": len(v), "values": list(v)}


C7B = {"claim": "C7b", "notebook": "02_predictor", "evidence": "figures loo_r2, loo_cosine; loo.csv",
       "uncertainty": {"SmolLM2-135M": {"predictor": spread(-0.97, -0.92, -0.89),
                                        "baselines": {"zeros": spread(-1e-5, -1e-5, -1e-5),
                                                      "neighbour_average": spread(-0.49, -0.49, -0.49)}}}}
C3 = {"claim": "C3", "notebook": "03_expansion", "evidence": "figure ppl_before_training",
      "uncertainty": {"SmolLM2-135M": {"base": spread(38.08), "lesa": spread(623.1, 589.8, 239.2),
                                       "llama_pro": spread(38.08), "solar": spread(74.88)}}}
C4 = {"claim": "C4", "notebook": "04_cpt_curves", "evidence": "figure loss_vs_compute (tokens and FLOPs)",
      "uncertainty": {"heldout": {"lesa_end": 3.1949, "llama_pro_end": spread(3.0251, 3.0243, 3.0262)},
                      "seed_rule": {"llama_pro": {"result": "higher", "n": 3, "n_ref": 3}}}}


def test_findings_follow_the_numbers_not_a_script():
    s = A.finding_sentences([C7B, C3, C4], "cpu")
    assert "learns less than a trivial predictor" in s[0] and "-0.92 (-0.97 to -0.89, 3 seeds)" in s[0]
    assert "from 38.1 to 590 (239–623, 3 seeds), 15 times the base" in s[1]
    assert "still trails LLaMA Pro" in s[2] and "3.025 (3.024–3.026, 3 data orders)" in s[2]
    # the same sentences with the numbers the other way round say the other thing
    better = {**C7B, "uncertainty": {"M": {"predictor": spread(0.5, 0.6, 0.7),
                                           "baselines": {"zeros": spread(0.0, 0.0, 0.0)}}}}
    lower = {**C4, "uncertainty": {**C4["uncertainty"], "seed_rule": {"llama_pro": {"result": "lower", "n": 3, "n_ref": 3}}}}
    s = A.finding_sentences([better, C3, lower], "cpu")
    assert "learns more than every trivial predictor" in s[0] and "leads LLaMA Pro" in s[2]
    # a repr stored by an older record is read as the mapping it was
    assert A.finding_sentences([{**C3, "uncertainty": repr(C3["uncertainty"])}], "cpu")[1] == s[1]


def test_evidence_links_go_to_the_deciding_figure_named_in_the_notebooks():
    anchors = L.figure_anchors()
    assert anchors["04_cpt_curves"]["c4_longer_heldout"] == "fig-c4-longer"     # from the cell metadata
    assert anchors["01_svd_evidence"]["similarity_by_distance_concat"] == "fig-similarity-concat"  # multi-line call
    assert L.evidence_link(C4, anchors) == ("chapters/04_cpt_curves.html#fig-c4-longer", "ch. 4, figure")
    assert L.evidence_link(C7B, anchors)[0] == "chapters/02_predictor.html#fig-loo-r2"
    assert L.evidence_link({"claim": "C6", "notebook": "04_cpt_curves"}, anchors)[0] == \
        "chapters/04_cpt_curves.html#step-cost-measured-and-expected"
    assert L.evidence_link({"claim": "C10", "notebook": "05_downstream", "evidence": "-"}, anchors) == \
        ("chapters/05_downstream.html", "ch. 5")


def test_recommendation_says_where_evidence_is_missing():
    ladder = [{"model": "qwen2.5-coder-1.5b", "parameters": 1.54e9}]                 # measured nothing yet
    recs = A.recommendation_rows([C3, C4], ladder)
    by = {m.split(" (")[0]: (e, a) for m, e, a in recs}
    assert "still trails after training" in by["SmolLM2-135M"][1]
    assert by["Qwen2.5-Coder-1.5B"][1] == "no evidence yet" and "has not measured" in by["Qwen2.5-Coder-1.5B"][0]
    assert "no evidence of ours" in recs[-1][2]                                      # the paper's scale


def test_one_line_evidence_cuts_outside_parentheses():
    row = {"ours": "measured 1 : 1.25 : 1.78 (median step time; LESA 4.54 s); FLOP model expects 1 : 1.13"}
    assert A.one_line(row) == "measured 1 : 1.25 : 1.78 (median step time; LESA 4.54 s)"


def test_citations_of_figures_a_build_did_not_draw_are_said_in_words():
    fig = lambda name, drawn: {"cell_type": "code", "source": "page.save(fig, 'x')",
                               "metadata": {"mystnb": {"figure": {"name": name, "caption": "c"}}},
                               "outputs": [{"output_type": "display_data", "data": {"image/png": "iVBOR"}}] if drawn else []}
    nb = {"cells": [{"cell_type": "markdown", "source": "See {numref}`fig-a` and {numref}`fig-b`; {numref}`tab-c`."},
                    fig("fig-a", True), fig("fig-b", False)]}
    assert L.drawn_labels(nb) == {"fig-a"}
    assert L.drop_missing_numrefs(nb) == 1
    assert nb["cells"][0]["source"] == "See {numref}`fig-a` and a figure not drawn in this build; {numref}`tab-c`."
    assert L.drop_missing_numrefs(nb) == 0                                           # nothing left to rewrite
