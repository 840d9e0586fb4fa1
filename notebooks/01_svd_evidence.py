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
# **About this notebook**
#
# - **Shows**: t-SNE and PCA of each layer's SVD coefficients, and continuity measured against shuffled-order and
#   Gaussian controls for every weight type; the verdict on C1.
# - **Time** (2 CPU cores): `smoke` about 2 minutes, `cpu` 5 to 11 minutes; `gpu`: not measured yet. Every run's
#   wall-clock is recorded in `results/<profile>/book_run.json`.
# - **Profile**: set `profile` in the parameters cell below (`smoke`: a tiny random model that only checks the
#   code paths; `cpu`; `gpu`), or run `python -m lesa.book run --profile cpu --only 01_svd_evidence` from the
#   repository root.
#
# **Claim C1** (abstract): concatenating one weight type over all layers, `W = [W_1 | ... | W_L] = U S V^T`,
# and looking at each layer's block `V_i` of `V^T` "uncovers latent patterns between layers"; the paper shows
# a t-SNE of each layer's top-1 coefficient row, mainly for `gate_proj`, where adjacent layers sit close.
#
# We draw the same picture (t-SNE, with PCA beside it because t-SNE can draw a curve through any points), and
# then **measure** continuity instead of eyeballing it, for every weight type:
#
# * *adjacent vs distant*: mean cosine of layers `i, i+1` minus mean cosine of layers two or more apart;
# * *nearest neighbour*: how often a layer's most similar other layer is `i-1` or `i+1`;
# * against two controls: the **same layers in shuffled order** (a permutation test; the concatenated SVD is
#   invariant to block order) and **Gaussian matrices of the same shapes** and per-layer scale;
# * for three representations: the concatenated-SVD top-1 row (the paper's quantity), the top right singular
#   vector of a **per-layer SVD** (a different quantity; sign-free, so |cos|), and the raw weights.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
seed: int = 0                   # seed of the shuffled and Gaussian controls and of the embeddings

# %% tags=["hide-input"]
import pandas as pd

from lesa import analysis as A, claims as C, plots as P
from lesa.page import Page
from lesa.profiles import load_profile_model
from lesa.store import write_json

page = Page("01_svd_evidence", profile, results_root)
model, tok, model_key = load_profile_model(page.prof, tokenizer=False)
S = page.prof["svd"]
ev = A.cached_json("svd_evidence", {"model": model_key, "svd": S, "seed": seed},
                   lambda: A.svd_evidence(model, S["weight_types"], S["n_shuffles"], S["n_gaussian"],
                                          S["tsne_perplexity"], seed))
ev["model_key"] = model_key
write_json(page.out / "svd_evidence.json", ev)
types = list(ev["weight_types"])
page.md(f"`{model_key}`: {ev['num_layers']} layers; weight types {', '.join(types)}.")

# %% [markdown]
# ## Singular spectra
# Concatenated SVD of the real layers vs Gaussian matrices of the same shapes, and the mean per-layer spectrum.

# %% tags=["hide-input"]
page.save(P.spectra(ev), "spectra");

# %% [markdown]
# ## The paper's picture: t-SNE of each layer's top-1 coefficient row (PCA beside it)

# %% tags=["hide-input"]
page.save(P.embeddings(ev, "tsne"), "tsne");

# %% tags=["hide-input"]
page.save(P.embeddings(ev, "pca"), "pca");

# %% [markdown]
# ## Continuity, measured
# Mean cosine similarity as a function of how many layers apart two layers are; a continuous stack decays with
# distance, a shuffled one is flat.

# %% tags=["hide-input"]
page.save(P.similarity_by_distance(ev, "concat_svd_top1"), "similarity_by_distance_concat")
page.save(P.similarity_by_distance(ev, "per_layer_svd_top1"), "similarity_by_distance_per_layer");

# %% tags=["hide-input"]
page.save(P.continuity_summary(ev), "continuity_summary")
rows = []
for t, r in ev["weight_types"].items():
    for rep, tt in r["tests"].items():
        rows.append({"weight": t, "representation": rep, "adjacent": tt["observed"]["adjacent"],
                     "distant": tt["observed"]["distant"], "gap": tt["gap"]["observed"],
                     "gap shuffled q95": tt["gap"]["shuffled_q95"], "gap Gaussian max": tt["gap"]["gaussian_max"],
                     "p(gap)": tt["gap"]["p_shuffled"], "NN adjacent": tt["nn_adjacent"]["observed"],
                     "NN shuffled mean": tt["nn_adjacent"]["shuffled_mean"], "p(NN)": tt["nn_adjacent"]["p_shuffled"],
                     "continuity": tt["shows_continuity"]})
page.table(pd.DataFrame(rows), csv="continuity.csv", index=False)

# %% tags=["hide-input"]
cont = {rep: [t for t in types if ev["weight_types"][t]["tests"][rep]["shows_continuity"]] for rep in A.REPRESENTATIONS}
page.md(f"A weight type *shows continuity* here when both the adjacent-minus-distant gap and the nearest-neighbour "
        f"rate beat the shuffled order (one-sided p < 0.05 over {S['n_shuffles']} shuffles) and the gap exceeds every "
        f"Gaussian control. Concatenated-SVD top-1 rows: **{', '.join(cont['concat_svd_top1']) or 'none'}** of "
        f"{len(types)}; per-layer SVD: **{', '.join(cont['per_layer_svd_top1']) or 'none'}**; raw weights: "
        f"**{', '.join(cont['raw_weights']) or 'none'}**.")

# %% tags=["hide-input"]
verdicts = [C.judge_c1({t: ev["weight_types"][t]["tests"]["concat_svd_top1"] for t in types}, S["n_shuffles"],
                       num_layers=ev["num_layers"], budget={"model": model_key, "weight types": len(types)})]
page.finish(verdicts)
