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
# # 3. Expansion vs heuristics, before any training (claims C3, C9, C12c)
#
# **About this notebook**
#
# - **Shows**: the model grown by every method and control, compared before any training (perplexity (PPL)
#   under one protocol, a quick benchmark pass, what the new layers are), on the profile's model and on its
#   extra models (a second family); a section beyond the paper on learned initialisations that start at the base
#   model; the verdicts on C3, C9 and C12c.
# - **Time** (2 CPU cores): `smoke` a few minutes; `cpu` see `results/cpu/book_run.json` (grown models and
#   their evaluations are cached in `.cache/`; a rerun takes seconds). Every run's wall-clock is recorded there.
# - **Profile**: set `profile` in the parameters cell below (`smoke`: tiny random models that only check the
#   code paths; `cpu`; `gpu`), or run `python -m lesa.book run --profile cpu --only 03_expansion` from the
#   repository root.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
seeds: list = []                # predictor seeds (empty: the profile's predictor.seeds)
preferred_profiles: list = ["cpu-long"]  # longer versions of this profile (`extends`) with a larger perplexity
                                # protocol: once their notebook 3 has run, C3 is judged on their whole-protocol numbers

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm.auto in a kernel without widgets
import dataclasses
import gc
import time

import numpy as np
import pandas as pd
import torch
from IPython.display import display

from lesa import analysis as A, claims as C, norms as N, plots as P
from lesa.expand import apply_plan
from lesa.page import Page, model_label, quiet
from lesa.plans import build_plan
from lesa.predictor import PredictorConfig
from lesa.profiles import build_tiny, load_profile_model, longer_profiles, profile_models
from lesa.protocol import PplProtocol, headline, measure_cached
from lesa.shared_prefix import SharedPrefix
from lesa.store import read_json
from lesa.store import write_json

page = Page("03_expansion", profile, results_root)
seeds = list(seeds) or page.seeds
E = page.prof["expansion"]
proto = page.protocol
screen = dataclasses.replace(proto, sets=tuple(E["screen"]["sets"]), limits=dict(E["screen"]["limits"]))
extra_screen = dataclasses.replace(proto, sets=tuple(E["extra_screen"]["sets"]), limits=dict(E["extra_screen"]["limits"]))
SEEDED = set(E["seeded"])                        # grown once per predictor seed; the rest with the first seed
FULL = ("base", "lesa", "llama_pro", "solar")    # C3's models: also measured under the whole protocol
IDENTITY_TESTS = ("tests/test_expand.py::test_llama_pro_is_exactly_the_identity and "
                  "::test_alpha_zero_starts_exactly_at_the_base_model")
VARIANTS = {n: dict(v) for n, v in E["variants"].items()}
# the quick benchmarks run in the protocol's precision too; an fp32 entry keeps the key it had before they did
bench_prec = {} if proto.precision == "fp32" else {"precision": proto.precision}


def spec(name):
    """(method, plan options, predictor lambda or None for the default) of a grown model's name."""
    if name == "lesa-lambda0":
        return "lesa", {}, 0.0
    if name in VARIANTS:
        v = dict(VARIANTS[name])
        return v.pop("method"), v, None
    return name, {}, None


def name_of(name):
    """The one name a reader sees for a grown model."""
    method, opts, _ = spec(name)
    return P.label(name) if name in P.METHODS else P.variant_label(method, opts)


def grow_and_measure(model, tok, key, names, screen_proto, ids, deep):
    """name -> seed -> record. Every model is measured under `screen_proto` and its new layers' statistics
    are taken. A model whose logits equal the base model's on `ids` (an identity at initialisation) is not
    evaluated again: it gets the base model's numbers. `deep` (the profile's model): C3's models also under
    the whole protocol, and benchmarks and the residual stream of every model but the variants."""
    L = model.config.num_hidden_layers
    t0 = time.perf_counter()
    base = {"screen": measure_cached(model, tok, screen_proto, key, "base")}
    if deep:                                     # the whole protocol: the profile's model only (C3 is judged on it)
        base["ppl"] = measure_cached(model, tok, proto, key, "base")
    base["eval_s"] = round(time.perf_counter() - t0, 1)
    with torch.no_grad():
        base_logits = model(ids).logits
    if deep:
        base.update(A.cached_json("expansion_eval", {"model": key, "name": "base", "growth": None, **bench_prec,
                                                     "bench": [E["bench_tasks"], E["bench_limit"]], "tokens": E["residual_tokens"]},
                                  lambda: {"bench": A.quick_benchmarks(model, tok, E["bench_tasks"], E["bench_limit"],
                                                                       precision=proto.precision),
                                           "residual": A.residual_effect(model, ids)}))
    res, plans = {"base": {None: base}}, {}
    shared = SharedPrefix(model)                 # bottom layers shared with the base: computed once, bitwise the same
    for name in names:
        method, opts, lam = spec(name)
        for s in (seeds if name in SEEDED else seeds[:1]):
            cfg = PredictorConfig(epochs=page.prof["predictor"]["epochs"], seed=s, device=page.prof["device"])
            cfg = cfg if lam is None else dataclasses.replace(cfg, lam=lam)
            plan = build_plan(method, L, **opts)
            t0 = time.perf_counter()
            grown = apply_plan(model, plan, cfg, copy_weights=False, progress=False, cache_key=key)
            rec = {"grow_s": round(time.perf_counter() - t0, 1), "cache": grown.lesa_report.get("cache"), "lambda": cfg.lam}
            with torch.no_grad():
                rec["identity"] = bool(torch.allclose(grown(ids).logits, base_logits, rtol=0, atol=1e-5))
            growth = grown.config.lesa_growth
            t0 = time.perf_counter()
            if rec["identity"]:
                rec["screen"] = base["screen"]
                if name in FULL and deep:
                    rec["ppl"] = base["ppl"]
            else:
                with shared.attach(grown):
                    rec["screen"] = measure_cached(grown, tok, screen_proto, key, name, growth)
                    if name in FULL and deep:
                        rec["ppl"] = measure_cached(grown, tok, proto, key, name, growth)
            rec["layer_stats"] = A.new_layer_stats(model, grown, plan)     # cheap: weights only
            if deep and name not in VARIANTS:
                rec.update(A.cached_json("expansion_eval", {"model": key, "name": name, "growth": growth, **bench_prec,
                                                            "bench": [E["bench_tasks"], E["bench_limit"]], "tokens": E["residual_tokens"]},
                                         lambda g=grown: {"bench": A.quick_benchmarks(g, tok, E["bench_tasks"], E["bench_limit"],
                                                                                      precision=proto.precision),
                                                          "residual": A.residual_effect(g, ids)}))
            rec["eval_s"] = round(time.perf_counter() - t0, 1)
            res.setdefault(name, {})[s if name in SEEDED else None] = rec
            plans[name] = plan.to_dict()
            del grown
            gc.collect()
    return res, plans


def ppl(rec, where, s):
    """The perplexity of set `s` in rec[where] ("ppl": whole protocol, "screen"), or None."""
    r = rec.get(where, {}).get(s)
    return r["value"] if r and r.get("status") == "ok" else None


with quiet():                                    # keeps library logs and progress bars off the page
    # ---- the profile's model: the paper's methods and controls, the norm-term ablation, the variants
    models = [m["name"] for m in profile_models(page.prof)]
    model, tok, model_key = load_profile_model(page.prof)
    ids = A.fixture_ids(tok, E["residual_tokens"])
    main_names = list(E["methods"]) + (["lesa-lambda0"] if "lesa" in E["methods"] else [])
    res, plans = grow_and_measure(model, tok, model_key, main_names + [v for v in VARIANTS if v not in main_names],
                                  screen, ids, deep=True)
    L = model.config.num_hidden_layers
    lesa_plan = build_plan("lesa", L)
    norm_study = {"gains": N.gain_summary(model, lesa_plan)}
    cfg0 = PredictorConfig(epochs=page.prof["predictor"]["epochs"], seed=seeds[0], device=page.prof["device"])
    nb = apply_plan(model, build_plan("lesa", L, norm_source="neighbours"), cfg0, copy_weights=False, progress=False,
                    cache_key=model_key)
    norm_study["neighbours_screen"] = measure_cached(nb, tok, screen, model_key, "lesa-neighbour-norms", nb.config.lesa_growth)
    del nb
    gc.collect()
    by_model = {models[0]: {"res": res, "screen": screen}}

    # ---- the extra models (another family): C3's models and the controls, under their own screening protocol
    for section in profile_models(page.prof)[1:]:
        del model
        gc.collect()
        model, xtok, xkey = load_profile_model(page.prof, model=section)
        xres, _ = grow_and_measure(model, xtok, xkey, list(E["extra_methods"]), extra_screen,
                                   A.fixture_ids(xtok, E["residual_tokens"]), deep=False)
        by_model[section["name"]] = {"res": xres, "screen": extra_screen}

write_json(page.out / "expansion.json", {
    "model_key": model_key, "seeds": seeds, "protocol": proto.key(), "plans": plans, "norm_study": norm_study,
    "models": {m: {"screen": d["screen"].key(), "results": {n: {str(s): r for s, r in x.items()} for n, x in d["res"].items()}}
               for m, d in by_model.items()}});

hl = headline(proto.sets)
sh = headline(screen.sets)
full_vals = lambda n: [v for r in res.get(n, {}).values() if (v := ppl(r, "ppl", hl)) is not None]
scr_vals = lambda r_, n, s=sh: [v for r in r_.get(n, {}).values() if (v := ppl(r, "screen", s)) is not None]
# ---- a longer profile's whole protocol (cpu-long of cpu): once its notebook 3 has run, C3 is judged on it
wdir, wsource = A.find_results(profile, "03_expansion", (), results_root, prefer=longer_profiles(preferred_profiles, profile))
whole = None
if wsource and wsource != profile and (wdir / "expansion.json").exists():
    wexp = read_json(wdir / "expansion.json")
    if wexp.get("model_key") == model_key:             # the same source model, measured under the longer protocol
        wp = wexp["protocol"]
        wproto = PplProtocol(**{**wp, "sets": tuple(wp["sets"]), "limits": dict(wp["limits"])})
        wh = headline(wproto.sets)
        wres = wexp["models"][models[0]]["results"]
        spent = [r.get("eval_s") or 0 for n in FULL for r in wres.get(n, {}).values()]
        whole = {"profile": wsource, "proto": wproto, "set": wh, "minutes": sum(spent) / 60, "n": len(spent),
                 "vals": {n: [r["ppl"][wh]["value"] for r in wres.get(n, {}).values()
                              if (r.get("ppl") or {}).get(wh, {}).get("status") == "ok"] for n in FULL}}
main_c3 = (whole["vals"] if whole else {n: full_vals(n) for n in FULL},
           f"{whole['set']} perplexity ({whole['proto'].size_text(whole['set'])}, the {whole['profile']} profile's protocol)"
           if whole else f"{hl} perplexity")
c3 = {m: C.judge_c3(*main_c3) if m == models[0] else
      C.judge_c3({n: scr_vals(d["res"], n, headline(d["screen"].sets)) for n in FULL},
                 f"{headline(d['screen'].sets)} perplexity ({d['screen'].size_text(headline(d['screen'].sets))})")
      for m, d in by_model.items()}
best_variant = min((n for n in VARIANTS if scr_vals(res, n)), key=lambda n: float(np.median(scr_vals(res, n))), default=None)
found = [f"On {P.label('lesa')}'s initialisation (C3) the verdict is **{c3[models[0]].verdict}** on {model_label(models[0])}"
         + "".join(f" and **{v.verdict}** on {model_label(m)}" for m, v in list(c3.items())[1:]) + "."]
if whole and whole["vals"].get("lesa") and whole["vals"].get("base") and whole["vals"].get("solar"):
    found.append(f"C3 and C9 are judged on the {whole['profile']} profile's whole protocol ({whole['set']}, "
                 f"{whole['proto'].size_text(whole['set'])}): {P.label('lesa')} {C.spread_text(whole['vals']['lesa'], 4)}, "
                 f"{P.label('solar')} {C.fmt(whole['vals']['solar'][0], 4)}, the base model and {P.label('llama_pro')} "
                 f"{C.fmt(whole['vals']['base'][0], 4)} (table at the end of the next section).")
if scr_vals(res, "lesa") and scr_vals(res, "base"):
    found.append(("On this profile's own protocol, b" if whole else "B") + f"efore training, {P.label('lesa')}'s {sh} perplexity is {C.spread_text(scr_vals(res, 'lesa'), 4)} against "
                 f"{C.fmt(scr_vals(res, 'base')[0], 4)} for the base model, which {P.label('llama_pro')} equals exactly.")
if best_variant:
    found.append(f"Of the learned initialisations beyond the paper, {name_of(best_variant)} starts lowest "
                 f"({C.spread_text(scr_vals(res, best_variant), 4)}).")
page.md("**What we found.** " + " ".join(found))

# %% [markdown]
# We grow the model to 1.5x depth with **LESA**, **LLaMA Pro** (identity copies: the attention output and MLP down
# projections, `o_proj` and `down_proj`, zeroed), **SOLAR** (two copies of the model stacked, the middle layers
# dropped), and controls placed exactly like LESA's new layers: the **neighbour average**, **random** weights with
# the neighbours' scale, **LESA w/o SVD** (the same multilayer perceptron (MLP) predictor on raw weight rows
# instead of singular-vector rows) and **LESA with λ = 0** (no norm term in the predictor's loss). Every model
# that depends on the predictor seed (the profile's `expansion.seeded`: LESA, λ = 0, w/o SVD, random and the
# learned variants) is grown once per seed and reported as median [min, max], on every model. The unexpanded
# base model is measured the same way beside them.
#
# * **C3**: LESA gives the best initialisation (lowest initial loss; PPL below SOLAR across families). LLaMA
#   Pro's new layers are identities, so at step 0 it *is* the base model: beating it means beating the model we
#   started from.
# * **C9**: LESA's PPL is below SOLAR's across model families: judged on the two real families available
#   offline (the profile's `model` and `extra_models`).
# * **C12c**: the norm term of the predictor's loss is needed: we ask both whether λ = 0 shrinks the new layers
#   and whether the norm term gives a better grown model.
# * C2 and C12a are claims about training, judged on the continual pre-training (CPT) runs in notebook 4.

# %% [markdown]
# ## Perplexity before any training
#
# Models that are exact identities of the base model at initialisation (LLaMA Pro; the variants whose
# `o_proj`/`down_proj` are scaled by α = 0) are not evaluated again: their logits are checked equal to the base
# model's on the fixture tokens, and they get the base model's numbers (the identity is also a unit test, see
# below the table).

# %% tags=["hide-input"]
page.md(proto.sentence() + f" The controls, the λ ablation and the variants are compared under a bounded "
        f"screening protocol: {', '.join(f'{s} ({screen.size_text(s)})' for s in screen.sets)}, same windows and precision.")
sd = lambda s: "–" if s is None else s             # deterministic methods have no seed
full_rows = [{"method": name_of(n), "seed": sd(s), "set": k, "value": ppl(r, "ppl", k)}
             for n, d in res.items() for s, r in d.items() if "ppl" in r for k in proto.sets if ppl(r, "ppl", k) is not None]
ok_sets = [k for k in proto.sets if any(r["set"] == k for r in full_rows)]
base_ppl = {k: ppl(res["base"][None], "ppl", k) for k in ok_sets}

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Perplexity of the base model and of C3's grown models before any training, one panel per evaluation set; one dot per predictor seed, the bar at the median, the dashed line the base model. LLaMA Pro sits on the line because its new layers are identities.", "name": "fig-ppl-before-training"}, "image": {"alt": "Bar chart per evaluation set: perplexity on a log scale for the base model, LESA, LLaMA Pro and SOLAR, with a dashed line at the base model's value."}}
page.save(P.seed_points([{**r, "set": r["set"]} for r in full_rows], "value", x="method", facet="set", ylog=True,
                        ylabel="perplexity before training (log)", ref=base_ppl), "ppl_before_training");

# %% tags=["hide-input"]
tab = pd.DataFrame([{"method": name_of(n), "seed": sd(s), "identity of the base": r.get("identity", False),
                     **{f"{k} (protocol)": ppl(r, "ppl", k) for k in ok_sets}, f"{sh} (screen)": ppl(r, "screen", sh)}
                    for n, d in res.items() for s, r in d.items()])
page.seed_table(tab, ["method"], [f"{k} (protocol)" for k in ok_sets] + [f"{sh} (screen)"],
                csv="ppl_before_training.csv", digits=4)
missing = sorted({k for d in res.values() for r in d.values() for k, v in r.get("ppl", {}).items() if v["status"] != "ok"})
if missing:
    page.md(f"Not measured (data not prepared, run `make data`): {', '.join(missing)}.")
page.md(f"Identities at initialisation reuse the base model's numbers; that they are exact identities is tested in "
        f"{IDENTITY_TESTS}.")
if whole:
    page.md(f"**The whole protocol** (the `{whole['profile']}` profile's notebook 3, the same model and growth code; C3 is "
            f"judged on these numbers). " + whole["proto"].sentence()
            + f" Measuring the {whole['n']} models below this way took {whole['minutes']:.0f} minutes of "
            f"wall-clock in all (the `eval s` column of that page's timings; identities reuse the base model's numbers).")
    page.seed_table(pd.DataFrame([{"method": name_of(n), "seed": sd(None if s_ == "None" else s_), "set": k,
                                   "perplexity": r["ppl"][k]["value"]}
                                  for n in FULL for s_, r in wexp["models"][models[0]]["results"].get(n, {}).items()
                                  for k in whole["proto"].sets if (r.get("ppl") or {}).get(k, {}).get("status") == "ok"]),
                    ["method", "set"], ["perplexity"], csv="ppl_whole_protocol.csv", digits=4)

# %% [markdown]
# ## Quick benchmark pass (accuracy before training; limited number of questions, see the profile)

# %% tags=["hide-input"]
brows = [{"method": name_of(n), "seed": sd(s), "task": t, "acc": v["value"], "stderr": v.get("stderr"), "n": v.get("n")}
         for n, d in res.items() for s, r in d.items() for t, v in r.get("bench", {}).items() if v.get("status") == "ok"]
if brows:
    bt = pd.DataFrame(brows)
    page.seed_table(bt, ["method", "task"], ["acc", "stderr"], csv="bench_before_training.csv")
    page.md(f"Questions per task: {bt.groupby('task')['n'].max().to_dict()}; a difference below about two standard "
            "errors is noise.")
else:
    page.md("No benchmark ran (data not prepared or lm-eval missing).")

# %% [markdown]
# ## What are the new layers?
# Norm of each new weight relative to its neighbours', cosine with the lower and upper neighbour; the heatmaps
# show LESA's first seed.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Norm of each of LESA's new weights relative to the mean norm of its two neighbours (first predictor seed): the norm term keeps predictions near their neighbours' scale.", "name": "fig-lesa-norm-ratio"}, "image": {"alt": "Heatmap with one row per weight type and one column per new layer, coloured by the new weight's norm over its neighbours' mean norm."}}
first = lambda n: res[n][min(res[n], key=lambda s: -1 if s is None else s)]
page.save(P.new_layer_heatmap(first("lesa")["layer_stats"], "norm_ratio",
                              f"{P.label('lesa')}: ||W_new|| / mean ||W_neighbours||"), "lesa_norm_ratio");

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cosine between each of LESA's new weights and its lower neighbour (first predictor seed): how close a predicted layer is to the layer it sits above.", "name": "fig-lesa-cos-lower"}, "image": {"alt": "Heatmap with one row per weight type and one column per new layer, coloured by the cosine between the new weight and the layer below it."}}
page.save(P.new_layer_heatmap(first("lesa")["layer_stats"], "cos_src0", f"{P.label('lesa')}: cos(W_new, W_lower)"),
          "lesa_cos_lower");

# %% tags=["hide-input"]
ls = pd.DataFrame([dict(method=name_of(n), seed=sd(s), **row) for n, d in res.items() for s, r in d.items()
                   for row in r.get("layer_stats", [])])
per_seed = ls.groupby(["method", "type", "seed"], sort=False)[["norm_ratio", "cos_src0", "cos_src1"]].mean().reset_index()
ls.to_csv(page.out / "new_layer_stats.csv", index=False)
page.seed_table(per_seed.rename(columns={"cos_src0": "cos lower", "cos_src1": "cos upper", "norm_ratio": "norm ratio"}),
                ["method", "type"], ["norm ratio", "cos lower", "cos upper"], csv="new_layer_stats_by_type.csv")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "How much each layer changes the residual stream before training (relative update, log scale; dots mark new layers). Identity layers change nothing and leave gaps.", "name": "fig-residual-effect"}, "image": {"alt": "Line chart over layer index of the relative residual-stream update per layer for every grown model, new layers marked with dots."}}
page.save(P.residual_plot({n: first(n)["residual"] for n in res if "residual" in first(n)},
                          {n: p["new_layers"] for n, p in plans.items()}), "residual_effect");


# %% tags=["hide-input"]
def upd(n, r, new):
    nl = set(plans[n]["new_layers"]) if n in plans else set()
    v = [x["rel_update"] for x in r["residual"] if (x["layer"] in nl) == new]
    return float(np.mean(v)) if v else None


rt = pd.DataFrame([{"method": name_of(n), "seed": sd(s), "new layers: mean rel. update": upd(n, r, True),
                    "original layers": upd(n, r, False)} for n, d in res.items() for s, r in d.items() if "residual" in r])
page.seed_table(rt, ["method"], ["new layers: mean rel. update", "original layers"], csv="residual_effect.csv", digits=4)

# %% [markdown]
# ## Where LESA's norms come from
# LESA's new layers take their RMSNorm gains (the per-channel scale of each layer's input normalisation) from
# layer 0, as the released code does; `--norms neighbours` takes the average of the two neighbours' instead.

# %% tags=["hide-input"]
g = norm_study["gains"]
display(P.table(pd.DataFrame([{"norm": k, "layer 0 mean |gain|": v["layer0"]["mean_abs"],
                               "gap neighbours mean |gain| (median over gaps)": float(np.median([x["mean_abs"] for x in v["gaps"]])),
                               "neighbours / layer 0 (min)": v["gap_over_layer0_mean_abs"]["min"],
                               "neighbours / layer 0 (max)": v["gap_over_layer0_mean_abs"]["max"]}
                              for k, v in g.items() if v["gap_over_layer0_mean_abs"]]),
                csv=page.out / "norm_gains.csv", index=False))
nb_ppl = (norm_study["neighbours_screen"].get(sh) or {}).get("value")
page.md(f"{sh} perplexity ({screen.size_text(sh)}), LESA's first seed: layer-0 norms "
        f"{C.fmt(ppl(first('lesa'), 'screen', sh), 4)}, neighbour norms {C.fmt(nb_ppl, 4)}; base model "
        f"{C.fmt(ppl(res['base'][None], 'screen', sh), 4)}. Layer 0's gains are much smaller than those of the layers "
        "around the gaps, so layer-0 norms feed LESA's new layers a weak input and damp their update; the predicted "
        "projections have their neighbours' norm but point elsewhere (near-zero cosine with them), so with the "
        "neighbours' stronger gains each new layer adds a large update in an unrelated direction and the model breaks.")

# %% [markdown]
# ## The norm term (C12c): new-layer norms and initial perplexity with and without it

# %% tags=["hide-input"] mystnb={"figure": {"caption": "LESA with and without the norm term (\u03bb = 0): the new layers' norm relative to their neighbours' (left) and the perplexity before training (right), one dot per predictor seed.", "name": "fig-norm-ablation"}, "image": {"alt": "Two panels of dots and bars comparing LESA and LESA with lambda zero: new-layer norm ratio and perplexity before training."}}
norm_of = lambda r: float(np.mean([x["norm_ratio"] for x in r["layer_stats"]]))
lam_rows = [{"method": n, "seed": sd(s), "panel": panel, "value": v}
            for n in ("lesa", "lesa-lambda0") if n in res for s, r in res[n].items()
            for panel, v in (("new-layer norm / neighbours'", norm_of(r)), (f"{sh} perplexity (screen)", ppl(r, "screen", sh)))]
page.save(P.seed_points(lam_rows, "value", x="method", facet="panel"), "norm_ablation");

# %% [markdown]
# ## Beyond the paper: can a learned initialisation beat identity blocks?
#
# LLaMA Pro starts exactly at the base model. Can a learned initialisation start *below* it? We grow variants
# of LESA that keep the predicted layers but shrink or simplify them: `o_proj`/`down_proj` scaled by α (α = 0
# is an identity, like LLaMA Pro, but with informative q, k, v, gate and up projections for training to use), a
# rebuild from the top-k singular directions only, a closed-form ridge predictor instead of the MLP, an
# interpolation of the neighbours' per-layer SVDs, and two controls (a copy or a random layer with
# `o_proj`/`down_proj` zeroed). The variants in the profile's `expansion.seeded` are grown once per predictor
# seed, the others with the first seed (the table's `seeds` column says which). All are measured under the
# screening protocol. Starting well is not training well: chapter 4 trains two of them (the function-preserving
# variant at α = 0 and the low-rank variant at k = 32, both starting at the base model) beside LLaMA Pro on the
# same tokens, and the `cpu-long` profile does so for ten times the tokens with three predictor seeds each.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Perplexity before training of the learned variants beyond the paper and their controls, against the base model (dashed line; LLaMA Pro equals it). A dot below the line would be a learned initialisation that beats identity blocks.", "name": "fig-variants-before-training"}, "image": {"alt": "Dots and bars of screening perplexity per variant on a log scale, with a dashed line at the base model."}}
vrows = [{"method": name_of(n), "seed": sd(s), "value": ppl(r, "screen", sh)}
         for n in ["base", "llama_pro", "lesa", *VARIANTS] if n in res for s, r in res[n].items()]
page.save(P.seed_points(vrows, "value", ylog=True, ylabel=f"{sh} perplexity, screen (log)",
                        ref={None: ppl(res["base"][None], "screen", sh)}), "variants_before_training");

# %% tags=["hide-input"]
vt = pd.DataFrame([{"method": name_of(n), "seed": sd(s), "identity of the base": r.get("identity", False),
                    f"{sh} (screen)": ppl(r, "screen", sh), "grow s": r.get("grow_s"), "eval s": r.get("eval_s")}
                   for n in ["base", "llama_pro", "lesa", *VARIANTS] if n in res for s, r in res[n].items()])
page.seed_table(vt, ["method"], [f"{sh} (screen)"], csv="variants_before_training.csv", digits=4)

# %% [markdown]
# ## A second family
# The same comparison on each of the profile's extra models, under its own screening protocol (a model with a
# larger vocabulary costs more per token, so fewer documents may be used; the protocol is printed).

# %% tags=["hide-input"]
rows = []
for m, d in by_model.items():
    s_ = headline(d["screen"].sets)
    for n, x in d["res"].items():
        for s, r in x.items():
            rows.append({"model": model_label(m), "method": name_of(n), "seed": sd(s), "identity of the base": r.get("identity", False),
                         "set": f"{s_} ({d['screen'].size_text(s_)})", "perplexity": ppl(r, "screen", s_)})
page.seed_table(pd.DataFrame(rows), ["model", "method", "set"], ["perplexity"], csv="ppl_by_model.csv", digits=4)

# %% [markdown]
# ## Time spent
# Seconds this run spent growing each model (predictor training, or reading the growth cache: `cache` says which)
# and evaluating it, per model and seed; a cached evaluation or an identity (not evaluated again) costs about 0 s.

# %% tags=["hide-input"]
display(P.table(pd.DataFrame([{"model": model_label(m), "method": name_of(n), "seed": sd(s), "cache": r.get("cache", "–"),
                               "grow s": r.get("grow_s"), "eval s": r.get("eval_s")}
                              for m, d in by_model.items() for n, x in d["res"].items() for s, r in x.items()]),
                csv=page.out / "timings.csv", index=False))

# %% [markdown]
# ## Other families' code paths
# Tiny random Qwen2 and Mistral models: the growth code runs and LLaMA Pro stays an identity on their layouts.

# %% tags=["hide-input"]
fam = []
with quiet():
    for family in E["family_demo"]:
        m0 = build_tiny(page.prof, family, vocab_size=256, seed=seeds[0])
        x = torch.randint(0, 256, (1, 16))
        for method in ("lesa", "llama_pro", "solar"):
            g_ = apply_plan(m0, build_plan(method, m0.config.num_hidden_layers), PredictorConfig(epochs=1, seed=seeds[0]),
                            progress=False)
            with torch.no_grad():
                same = torch.allclose(m0(x).logits, g_(x).logits, atol=1e-4)
                finite = bool(torch.isfinite(g_(x).logits).all())
            fam.append({"family": family, "method": P.label(method),
                        "layers": f"{m0.config.num_hidden_layers} -> {g_.config.num_hidden_layers}",
                        "finite logits": finite, "identical to source": same})
display(P.table(pd.DataFrame(fam), csv=page.out / "family_demo.csv", index=False))

# %% tags=["hide-input"]
budget = {"seeds": seeds, "set": f"{hl} ({proto.size_text(hl)}, {proto.max_length}-token windows)" if hl else "none"}
lam_code = PredictorConfig().lam
# C9 reads the same numbers as C3: the first model under the whole protocol (a longer profile's when it has run)
c9_init = {m: {n: (main_c3[0][n] if m == models[0] else scr_vals(d["res"], n, headline(d["screen"].sets)))
               for n in ("lesa", "solar")} for m, d in by_model.items()}
c9_init = {model_label(m): v for m, v in c9_init.items()}
verdicts = [
    C.across_models({model_label(m): v for m, v in c3.items()}),
    C.judge_c9(c9_init, f"{main_c3[1]} on the first model, the screening protocol's on the others",
               budget={**budget, "set": f"{main_c3[1]} on the first model; the screening protocol's on the others"}),
    C.across_models({model_label(m): C.judge_c12c(
        {0.0: [norm_of(r) for r in d["res"].get("lesa-lambda0", {}).values()],
         lam_code: [norm_of(r) for r in d["res"].get("lesa", {}).values()]},
        {0.0: scr_vals(d["res"], "lesa-lambda0", headline(d["screen"].sets)),
         lam_code: scr_vals(d["res"], "lesa", headline(d["screen"].sets))},
        f"{headline(d['screen'].sets)} perplexity (screen: {d['screen'].size_text(headline(d['screen'].sets))})",
        base_ppl=ppl(d["res"]["base"][None], "screen", headline(d["screen"].sets)), budget=budget, lam_code=lam_code)
        for m, d in by_model.items()}),
]
if len(by_model) > 1:
    page.md("C12a (LESA w/o SVD between LESA and LLaMA Pro) is judged after CPT in notebook 4; before training, on each "
            "model: " + "; ".join(f"{model_label(m)}: w/o SVD {C.spread_text(scr_vals(d['res'], 'lesa_raw', headline(d['screen'].sets)), 4)}, "
                                  f"LESA {C.spread_text(scr_vals(d['res'], 'lesa', headline(d['screen'].sets)), 4)}"
                                  for m, d in by_model.items()) + " (a note only, not a verdict).")
page.finish(verdicts)
