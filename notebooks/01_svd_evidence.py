# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Is there inter-layer continuity in the SVD coefficients? (claim C1)
#
# LESA's premise (claim C1) is that the singular value decomposition (SVD) of one weight type concatenated over
# all layers shows a pattern from layer to layer, which a small network can then learn. This chapter draws the
# paper's picture and then measures the continuity against shuffled-order and Gaussian controls, for every weight
# type, on two models. The answer comes first, below; C1 is decided on {numref}`fig-continuity-by-model` and the
# numbers of Table 1. How to run this chapter alone, how long it takes and on which profile: {doc}`../reproduce`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
seed: int = 0                   # seed of the shuffled and Gaussian controls and of the embeddings

# %% tags=["hide-input"]
import gc

import pandas as pd
from IPython.display import display

from lesa.study import analysis as A
from lesa.study.common import cached_json
from lesa.claims import rules as C
from lesa.claims.paper import fmt
from lesa.claims.verdict import per_model
from lesa.plots.growth import continuity_by_model, continuity_summary, embeddings, similarity_by_distance, spectra
from lesa.plots.style import REPRESENTATIONS
from lesa.plots.table import table
from lesa.book.page import Page
from lesa.core.models import model_label
from lesa.study.profiles import load_profile_model, profile_models
from lesa.core.store import write_json

page = Page("01_svd_evidence", profile, results_root)
S = page.prof["svd"]
sections = profile_models(page.prof)
evs, keys = {}, {}
for i, section in enumerate(sections):
    # the extra models get one Gaussian control per representation (the costly part: a full-size SVD
    # each); the shuffled-order controls, which decide the p-values, are the same for every model
    s_m = S if i == 0 else {**S, "n_gaussian": min(1, S["n_gaussian"])}
    model, _, key = load_profile_model(page.prof, tokenizer=False, model=section)
    ev = cached_json("svd_evidence", {"model": key, "svd": s_m, "seed": seed},
                       lambda m=model, s=s_m: A.svd_evidence(m, s["weight_types"], s["n_shuffles"], s["n_gaussian"],
                                                             s["tsne_perplexity"], seed))
    ev["model_key"], ev["n_gaussian"] = key, s_m["n_gaussian"]
    evs[model_label(section)], keys[model_label(section)] = ev, key
    del model
    gc.collect()
main = next(iter(evs))
ev = evs[main]
write_json(page.out / "svd_evidence.json", ev)
write_json(page.out / "svd_evidence_by_model.json", evs);
types = list(ev["weight_types"])


def continuous(e, rep="concat_svd_top1"):
    return [t for t in e["weight_types"] if e["weight_types"][t]["tests"][rep]["shows_continuity"]]


verdicts = [per_model({m: C.judge_c1({t: e["weight_types"][t]["tests"]["concat_svd_top1"] for t in e["weight_types"]},
                                       S["n_shuffles"], num_layers=e["num_layers"],
                                       raw={t: e["weight_types"][t]["tests"]["raw_weights"] for t in e["weight_types"]
                                            if "raw_weights" in e["weight_types"][t]["tests"]},
                                       budget={"model": keys[m], "weight types": len(e["weight_types"]),
                                               "Gaussian controls": e["n_gaussian"]})
                         for m, e in evs.items()})]

# %% tags=["hide-input"]
found = []
for m, e in evs.items():
    g = e["weight_types"].get("gate") or next(iter(e["weight_types"].values()))
    t = g["tests"]["concat_svd_top1"]
    found.append(f"**{m}** ({e['num_layers']} layers): the paper's quantity shows continuity in "
                 f"{len(continuous(e))} of {len(e['weight_types'])} weight types "
                 f"({', '.join(continuous(e)) or 'none'}); for gate, adjacent layers are "
                 f"{fmt(t['gap']['observed'])} more similar than distant ones (shuffled order: 95% below "
                 f"{fmt(t['gap']['shuffled_q95'])}, p = {fmt(t['gap']['p_shuffled'])}).")
page.md("**What we found.** " + " ".join(found) + f" Verdict on C1: **{verdicts[0].verdict}**.")

# %% [markdown]
# *Continuity* here means that both measures below beat the same layers in shuffled order (a one-sided
# permutation p-value, p, below 0.05) and that the gap beats every Gaussian control:
#
# * the *gap*: the mean cosine similarity of adjacent layers (`i, i+1`) minus that of layers two or more apart;
# * the *nearest-neighbour rate*: how often a layer's most similar other layer is `i-1` or `i+1`.
#
# {numref}`fig-continuity-by-model` gives both for the paper's quantity on every model, and Table 1 their values.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The paper's quantity (concatenated-SVD top-1 rows) on every model of the profile: both continuity measures per weight type, with the shuffled-order 95th percentile as a tick.", "name": "fig-continuity-by-model"}, "image": {"alt": "Two bar panels by weight type with one bar per model: the adjacent-minus-distant cosine gap and the share of layers whose nearest neighbour is adjacent, with tick marks at the shuffled-order 95th percentile."}}
page.save(continuity_by_model(evs), "continuity_by_model");

# %% tags=["hide-input"]
rows = []
for m, e in evs.items():
    for t, r in e["weight_types"].items():
        for rep, tt in r["tests"].items():
            rows.append({"model": m, "weight": t, "representation": REPRESENTATIONS.get(rep, rep),
                         "adjacent": tt["observed"]["adjacent"], "distant": tt["observed"]["distant"],
                         "gap": tt["gap"]["observed"], "gap, shuffled 95th percentile": tt["gap"]["shuffled_q95"],
                         "gap, Gaussian max": tt["gap"]["gaussian_max"], "p(gap)": tt["gap"]["p_shuffled"],
                         "nearest neighbour adjacent": tt["nn_adjacent"]["observed"],
                         "same, shuffled mean": tt["nn_adjacent"]["shuffled_mean"], "p(nearest neighbour)": tt["nn_adjacent"]["p_shuffled"],
                         "continuity": "yes" if tt["shows_continuity"] else "no"})
rows = pd.DataFrame(rows)
paper = rows[rows["representation"] == REPRESENTATIONS.get("concat_svd_top1", "concat_svd_top1")]
table(rows, csv=page.out / "continuity.csv", index=False)    # every measure, control and representation: the CSV
display(table(paper[["model", "weight", "gap", "gap, shuffled 95th percentile", "p(gap)", "nearest neighbour adjacent",
                     "p(nearest neighbour)", "continuity"]], index=False, download=page.out / "continuity.csv",
              caption="Table 1. Continuity of the paper's quantity (concatenated-SVD top-1 rows), per model and weight "
              "type. The CSV below holds every measure and control for all three representations."))

# %% [markdown]
# ## The claim, and how we test it
#
# **Claim C1** (abstract): concatenating one weight type over all layers, `W = [W_1 | ... | W_L] = U S V^T`,
# and looking at each layer's block `V_i` of `V^T` "uncovers latent patterns between layers"; the paper shows
# a t-SNE (t-distributed stochastic neighbour embedding) of each layer's top-1 coefficient row, mainly for the
# MLP's gate projection, where adjacent layers sit close.
#
# We draw the same picture, with a principal component analysis (PCA) beside it because t-SNE can draw a curve
# through any points, and then **measure** continuity instead of eyeballing it, for every weight type, with the
# two measures above, against two controls: the **same layers in shuffled order** (a permutation test; the
# concatenated SVD is invariant to block order) and **Gaussian matrices of the same shapes** and per-layer scale
# (one Gaussian draw per weight type for the second model, to bound the cost). We measure three representations:
# the concatenated-SVD top-1 row (the paper's quantity), the top right singular vector of a **per-layer SVD** (a
# different quantity; sign-free, so |cos|), and the raw weights. The figures below are for the profile's first
# model ({numref}`fig-spectra` to {numref}`fig-continuity-summary`).

# %% [markdown]
# ## Singular spectra
# {numref}`fig-spectra`: the concatenated SVD of the real layers against Gaussian matrices of the same shapes, and
# the mean per-layer spectrum.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Singular values of the concatenated weights of each type, against Gaussian matrices of the same shapes and the mean per-layer spectrum: where the real curve lies above the Gaussian one at the top, the stack has directions that noise does not.", "name": "fig-spectra"}, "image": {"alt": "One panel per weight type: singular value against index on log axes, for the concatenated real weights, Gaussian matrices of the same shapes, and the mean per-layer spectrum."}}
page.save(spectra(ev), "spectra");

# %% [markdown]
# ## The paper's picture: t-SNE of each layer's top-1 coefficient row (PCA beside it)
# {numref}`fig-tsne` is the paper's picture; {numref}`fig-pca` projects the same rows linearly.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "t-SNE of each layer's top-1 coefficient row of the concatenated SVD (the paper's picture), coloured by depth: a path through the layers in order suggests continuity, but t-SNE can draw a path through any points.", "name": "fig-tsne"}, "image": {"alt": "One scatter panel per weight type, one point per layer, coloured from shallow to deep, with lines joining consecutive layers."}}
page.save(embeddings(ev, "tsne"), "tsne");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The same coefficient rows projected on their first two principal components, a linear view that cannot invent a path.", "name": "fig-pca"}, "image": {"alt": "One scatter panel per weight type, one point per layer on the first two principal components, coloured by depth, consecutive layers joined."}}
page.save(embeddings(ev, "pca"), "pca");

# %% [markdown]
# ## Continuity, measured
# Mean cosine similarity as a function of how many layers apart two layers are, for the paper's quantity
# ({numref}`fig-similarity-concat`) and for the per-layer SVD ({numref}`fig-similarity-per-layer`); a continuous
# stack decays with distance, a shuffled one is flat. {numref}`fig-continuity-summary` sets both measures of every
# representation against the shuffled order (the CSV under Table 1 gives their values).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Mean cosine similarity of the concatenated-SVD top-1 rows against the distance between layers, with the Gaussian control: a continuous stack decays with distance.", "name": "fig-similarity-concat"}, "image": {"alt": "One panel per weight type: mean cosine similarity on the vertical axis against layer distance on the horizontal axis, real layers and Gaussian control."}}
page.save(similarity_by_distance(ev, "concat_svd_top1"), "similarity_by_distance_concat");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The same for the top right singular vector of each layer's own SVD (absolute cosine, since its sign is arbitrary).", "name": "fig-similarity-per-layer"}, "image": {"alt": "One panel per weight type: mean absolute cosine similarity of per-layer top singular vectors against layer distance, real layers and Gaussian control."}}
page.save(similarity_by_distance(ev, "per_layer_svd_top1"), "similarity_by_distance_per_layer");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Both continuity measures for every weight type and representation, with the 95th percentile of the shuffled layer order as a tick: a bar above its tick beats the shuffled order.", "name": "fig-continuity-summary"}, "image": {"alt": "Two bar panels by weight type, one bar per representation: the adjacent-minus-distant cosine gap and the share of layers whose nearest neighbour is adjacent, with tick marks at the shuffled-order 95th percentile."}}
page.save(continuity_summary(ev), "continuity_summary");

# %% tags=["hide-input"]
reps = {"concat_svd_top1": "concatenated-SVD top-1 rows", "per_layer_svd_top1": "per-layer SVD",
        "raw_weights": "raw weights"}
page.md(f"Weight types that show continuity (over {S['n_shuffles']} shuffles), per representation: " + " ".join(
            f"{m}: " + "; ".join(f"{what} **{', '.join(continuous(e, rep)) or 'none'}**" for rep, what in reps.items())
            + f" (of {len(e['weight_types'])})." for m, e in evs.items()))

# %% [markdown]
# ## How this was run
#
# Each model's SVD and controls are computed once and stored; the shuffled-order controls, which decide the
# p-values, are the same for every model, and the second model gets one Gaussian control per weight type.

# %% tags=["hide-input"]
page.md(f"Detail figures: {main}, {ev['num_layers']} layers; weight types {', '.join(types)}. "
        + " ".join(f"{m}: {e['n_gaussian']} Gaussian control(s) per weight type." for m, e in evs.items()))

# %% tags=["hide-input"]
page.finish(verdicts)
