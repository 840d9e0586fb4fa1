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
# # 7. Scale: does LESA's premise strengthen from 135M to 1.5B parameters? (ours)
#
# Does what LESA needs (continuity across layers, a predictor that learns it, a start better than the heuristics')
# get stronger as the model grows? The answer, computed from the ladder's results, is the paragraph right below;
# {numref}`fig-scale-ladder` decides it. Nothing here is a claim of the paper. Which models, seeds and budgets: the
# end of this page and {doc}`../reproduce`.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # the book's profile: cpu and gpu show the `scale` profile's ladder; smoke its own
results_root: str = "results"   # outputs go to <results_root>/<profile>/07_scale/

# %% tags=["hide-input"]
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from lesa.claims.paper import and_list, fmt
from lesa.grow import methods as M
from lesa.plots.style import PAGE_W
from lesa.study import scale as Sc
from lesa.claims.paper import opt_deus_sentence
from lesa.book.display import uniform
from lesa.book.page import Page
from lesa.plots.table import table

page = Page("07_scale", profile, results_root, announce=False)
d = Sc.chapter(profile)
rows, S = d["rows"], d["settings"]
have = lambda key: [r for r in rows if r.get(key) is not None]
med = lambda v: v["median"] if isinstance(v, dict) else v


def trend(key):
    """In words: how a quantity moves from the smallest to the largest model measured."""
    rs = have(key)
    if len(rs) < 2:
        return "is measured on fewer than two models"
    a, b = med(rs[0][key]), med(rs[-1][key])
    word = "rises" if b > a else "falls"
    return f"{word} from {fmt(a)} ({Sc.model_name(rs[0]['model'])}) to {fmt(b)} ({Sc.model_name(rs[-1]['model'])})"


answer = Sc.answer(rows, len(S["models"]))
page.md("**What we found.** " + (" ".join(answer) if answer else "The ladder has no measured model for this profile."))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The claims that need no training against model size (parameters, log axis), each point a model, bars the range over three predictor seeds. (a) C1: the gate weights' continuity margin over the shuffled order (above 0: continuity). (b) C7b: the predictor's held-out R\u00b2 on a left-out gate layer, beside the neighbours' average. (c) Perplexity before training relative to the base model (log axis; LLaMA Pro is exactly 1).", "name": "fig-scale-ladder"}, "image": {"alt": "Three panels with model parameters on a log horizontal axis: the continuity margin, the held-out R\u00b2 of the predictor and of the neighbour average, and the perplexity before training relative to the base model for LESA, SOLAR, LESA without SVD and LESA with lambda 5e-5."}}
# two by two, the fourth cell for the legend: in one row of three, the 135M, 268M and 494M ticks (a factor of two
# apart on a log axis) ran into each other
fig, grid = plt.subplots(2, 2, figsize=(PAGE_W, 5.2))
axes, legend_ax = list(grid.flat[:3]), grid.flat[3]


def series(ax, key, label, color, marker="o"):
    rs = have(key)
    if not rs:
        return
    x = [r["parameters"] for r in rs]
    y = [med(r[key]) for r in rs]
    lo = [y_ - (r[key]["min"] if isinstance(r[key], dict) else y_) for r, y_ in zip(rs, y)]
    hi = [(r[key]["max"] if isinstance(r[key], dict) else y_) - y_ for r, y_ in zip(rs, y)]
    ax.errorbar(x, y, yerr=[lo, hi], marker=marker, color=color, label=label, capsize=3, lw=1.2, ms=4)


series(axes[0], "c1_gate_margin", "gate, SVD rows", M.color("lesa"))
axes[0].axhline(0, color="0.5", lw=0.8)
axes[0].set(title="(a) C1 continuity margin", ylabel="cosine gap minus\nshuffled 95th pct.")
series(axes[1], "c7b_r2", "LESA predictor", M.color("lesa"))
series(axes[1], "c7b_r2_neighbour_average", "neighbour average", M.color("average"), "s")
axes[1].axhline(0, color="0.5", lw=0.8)
axes[1].set(title="(b) C7b held-out R²", ylabel="R² (0: zeros)")
for m in ("lesa", "solar", "lesa_raw", "lesa-lambda5e-5"):
    series(axes[2], f"init_{m}_rel", M.label(m), M.color(m))
axes[2].axhline(1, color=M.color("llama_pro"), lw=1, ls="--", label=M.label("llama_pro"))
axes[2].set(title="(c) perplexity before training", ylabel="÷ base model", yscale="log")
ticks = sorted({r["parameters"] for r in rows})
for ax in axes:                 # one tick per model, named by its size
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t / 1e9:.1f}B" if t >= 1e9 else f"{t / 1e6:.0f}M" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("parameters")
axes[2].yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
axes[2].yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}" if len(axes[2].get_yticks()) < 3 else ""))
handles = {h.get_label(): h for ax in axes[1:] for h in ax.get_legend_handles_labels()[0]}
legend_ax.axis("off")
legend_ax.legend(handles.values(), handles.keys(), loc="center", ncol=1)
page.save(fig, "scale_ladder");

# %% [markdown]
# ## The ladder, and how we read it
# Every other chapter measures models of 135M and 270M parameters, while the paper's claims are about models of
# 1.5B to 70B. This chapter measures the claims that need no training on four real models, from SmolLM2-135M to
# Qwen2.5-Coder-1.5B, each on three predictor seeds and under one perplexity protocol they all share:
# {numref}`fig-scale-ladder` sets continuity (C1), the predictor's held-out fit (C7b), the perplexity before
# training (C3, C9, C12c) against model size, and Table 1 gives its numbers; a quantisation control bounds how far
# one round of quantisation moves them (further below). A quantity
# a model has not been measured on yet is left out of the figure and shows as "–" in the tables; the end of this page
# says what each model has.

# %% tags=["hide-input"]
if rows:
    page.md(f"The predictor's held-out R² on a left-out gate layer {trend('c7b_r2')} (0 is predicting zeros; the "
            f"neighbours' average, which learns nothing: {trend('c7b_r2_neighbour_average')}). LESA's perplexity before "
            f"training, relative to the base model, {trend('init_lesa_rel')}; SOLAR's {trend('init_solar_rel')}.")

# %% [markdown]
# ## The numbers
# Medians over the three predictor seeds with their range in parentheses. The perplexity protocol is the same for
# every model:

# %% tags=["hide-input"]
page.md(d["protocol"])
span = lambda v: "–" if v is None else (fmt(v) if not isinstance(v, dict) else
                                        f"{fmt(v['median'])} [{fmt(v['min'])}, {fmt(v['max'])}]")
shown_span = lambda v: uniform(span(v), tiny=False)    # as the page's other tables show a range (Page.md)
ladder = pd.DataFrame([{"model": Sc.model_name(r["model"]), "parameters (M)": round(r["parameters"] / 1e6),
                        "layers": r["layers"],
                        "continuity, SVD / raw": f"{r['c1_types_concat_svd_top1']} / {r['c1_types_raw_weights']} of "
                                                 f"{r['c1_types']}" if r.get("c1_types") else "–",
                        "held-out R²": shown_span(r.get("c7b_r2")), "held-out cosine": shown_span(r.get("c7b_cosine")),
                        "base perplexity": shown_span(r.get("init_base")),
                        "LESA ÷ base": shown_span(r.get("init_lesa_rel")),
                        "SOLAR ÷ base": shown_span(r.get("init_solar_rel"))} for r in rows])
display(table(ladder, csv=page.out / "ladder.csv", index=False, caption=page.caption(
    "The ladder: the weight types that show continuity (of the types measured), the predictor's held-out R² on a "
    "left-out gate layer, and the perplexity before training (the CSV adds each model's layers and the held-out "
    "cosine)."), show=[c for c in ladder.columns if c not in ("layers", "held-out cosine")]))

# %% [markdown]
# ## The norm term and the paper's λ (C12c), and the ablation without SVD (C12a's start)

# %% tags=["hide-input"]
variants = ["lesa", "lesa-lambda0", "lesa-lambda5e-5", "lesa_raw"]
page.table(pd.DataFrame([{"model": Sc.model_name(r["model"]), **{M.label(m): span(r.get(f"init_{m}_rel"))
                                                                  for m in variants}} for r in rows]),
           index=False, csv="norm_term.csv", caption=page.caption(
               "Perplexity before training relative to the base model for LESA as released (λ = 5e-4), without the "
               "norm term (λ = 0), with the paper's reported λ = 5e-5, and without the SVD."))
judged = [(r, Sc.c12c_on_ladder(r, 5e-5), Sc.c12c_on_ladder(r, 5e-4)) for r in rows]
judged = [(r, a, b) for r, a, b in judged if a and b]
if judged:
    page.table(pd.DataFrame([{"model": Sc.model_name(r["model"]),
                              **{f"norm, {M.label(m)}": span(r.get(f"norm_{m}"))
                                 for m in ("lesa-lambda0", "lesa-lambda5e-5", "lesa")},
                              "rule, λ = 5e-5": f"{a['verdict']}: {a['notes']}",
                              "rule, λ = 5e-4": f"{b['verdict']}: {b['notes']}"} for r, a, b in judged]),
               index=False, csv="norm_rule.csv", caption=page.caption(
                   "The new layers' norm relative to the layers they are predicted from (mean over new layers and "
                   "weight types), and chapter 3's rule for C12c (the norm term is needed: λ = 0 shrinks the new layers "
                   "below 0.9× the norm with the term, on every seed, and the term lowers the perplexity before "
                   "training) with the paper's λ = 5e-5 and with the code's 5e-4, on the models measured with both."))

# %% [markdown]
# ## Code (C11 before training, ours)
# The two coder models are also measured on Python source (four CPython standard-library modules, never used for
# training; a code model has very likely seen them in pre-training, so only ratios to the same base model mean
# anything).

# %% tags=["hide-input"]
coded = have("code_base")
if coded:
    page.table(pd.DataFrame([{"model": Sc.model_name(r["model"]), "base perplexity": span(r["code_base"]),
                              **{M.label(m): span(r.get(f"code_{m}_rel")) for m in S["code"]["methods"]}}
                             for r in coded]), index=False, csv="code.csv", caption=page.caption(
                                 "Token perplexity on the code set before training, relative to the base model."))
else:
    page.md("No coder model of the ladder has a code-set measurement.")

# %% [markdown]
# ## How far quantisation moves these numbers
# Every model here reached us quantised to 4 to 8 bits per weight. The control quantises one model's weights once
# more with the same block type on blocks shifted by half a block (one more round of the same error) and measures
# again; the difference bounds how much one round of quantisation moves each quantity.

# %% tags=["hide-input"]
if d["bound"]:
    shown = {"c1_gate_margin": "C1 gate margin", "c7b_r2": "held-out R²", "c7b_cosine": "held-out cosine",
             "init_lesa_rel": "LESA ÷ base", "init_solar_rel": "SOLAR ÷ base"}
    page.table(pd.DataFrame([{"model": Sc.model_name(m), **{shown[k]: fmt(b[k]) for k in shown if k in b}}
                             for m, b in d["bound"].items()]), index=False, csv="quantisation_bound.csv",
               caption=page.caption("Each quantity measured on the model quantised once more, minus the model's own "
                                    "(medians)."))
else:
    page.md("The ladder's results hold no quantisation control.")

# %% [markdown]
# ## Training at 0.5B (ours)
# One rung of the ladder is also trained: Qwen2.5-Coder-0.5B grown from 24 to 36 layers by LESA (its median
# predictor seed), LLaMA Pro and SOLAR, each continually pre-trained on the same tokens in the same order as the
# other chapters' runs (the corpus tokenised with Qwen's tokenizer), with its held-out loss measured every 10 steps
# on the same sequences ({numref}`fig-scale-cpt`). One run per method and a budget far below the paper's, so this
# describes what happens at this size; it decides no claim.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out loss of Qwen2.5-Coder-0.5B grown to 36 layers by each method during continual pre-training, one run per method, against training tokens (left) and training compute with the frozen layers' backward pass counted (right). A start far above the curves is named in the panel.", "name": "fig-scale-cpt"}, "image": {"alt": "Two panels of held-out loss curves of LESA, LLaMA Pro and SOLAR grown from Qwen2.5-Coder-0.5B, against tokens and against FLOPs."}}
T = d["training"]
if T["runs"]:
    from lesa.claims.beyond import flops_at
    from lesa.plots import figures as P

    page.save(P.heldout_loss_curves(T["runs"], flops=flops_at), "scale_cpt_heldout");

# %% tags=["hide-input"]
if T["rows"]:
    by = {r["method"]: r for r in T["rows"]}
    order = [m for m in ("llama_pro", "lesa", "solar") if m in by] + sorted(set(by) - {"llama_pro", "lesa", "solar"})
    page.table(pd.DataFrame([{"method": M.label(m), "trains": "every layer" if by[m]["trains"] == "all" else "new layers",
                              "held-out loss at the start": fmt(by[m]["start"]), "at the end": fmt(by[m]["end"]),
                              "tokens": f"{by[m]['tokens']:,}", "precision": by[m]["precision"],
                              "minutes": fmt(by[m]["train_min"], 2)} for m in order]),
               index=False, csv="scale_cpt.csv", caption=page.caption(
                   "Held-out loss (nats per token) of each 0.5B run before its first step and after its last, with what "
                   "it trained, its tokens, the precision it trained in and its training time on one CPU thread."))
    ends = sorted(((r["end"], r["method"]) for r in T["rows"] if r["end"] is not None))
    missing = sorted({"lesa", "llama_pro", "solar"} - set(by))
    page.md(f"After {by[ends[0][1]]['tokens']:,} tokens the lowest held-out loss is {M.label(ends[0][1])}'s "
            f"({fmt(ends[0][0])}), then " + ", ".join(f"{M.label(m)}'s ({fmt(v)})" for v, m in ends[1:]) + ". "
            + (f"Not trained yet: {', '.join(M.label(m) for m in missing)}. " if missing else "")
            + "".join(f"{M.label(r['method'])}'s held-out loss first rises, from {fmt(r['start'])} to {fmt(r['peak'][0])} "
                      f"at step {r['peak'][1]}, and ends {'above' if r['end'] > r['start'] else 'below'} its start "
                      f"({fmt(r['end'])})" + (": it trains every weight, the original layers too, at the learning rate "
                                              "of the new ones; we have not tested whether the learning rate, the "
                                              "precision or the model causes the rise. " if r["trains"] == "all" else ". ")
                      for r in T["rows"] if r["start"] is not None and r["peak"] and r["peak"][0] > r["start"])
            + "One run per method does not measure the run-to-run noise at this size"
            + (f" (SmolLM2-135M's {M.label('llama_pro')} runs on {T['order_spread']['n']} data orders end "
               f"{fmt(T['order_spread']['spread'], 2)} nats apart, chapter 4)" if T.get("order_spread") else "")
            + ", so these gaps are descriptions, not calls.")
elif d["profile"] == "scale":
    page.md("The 0.5B training rung has no finished run yet (how to run it: {doc}`../reproduce`).")
else:
    page.md("This profile's ladder of tiny models has no training rung.")

# %% [markdown]
# ## Beside the paper and an independent run
# The paper lists Qwen2.5-1.5B among the models it grows 1.5× and states that LESA's perplexity is below SOLAR's
# there; the table it comes from is most likely before training, and its values are not in the text we could read.
# Our Qwen2.5-Coder-1.5B has the same shape (28 layers, hidden size 1,536), so this is the ladder's direct test of
# that statement. An independent run of the official code (OpT-DeUS, which grew Llama 3.2-1B to 1.7B parameters and
# Llama 3.1-8B to 11.5B, then trained them on FineWeb-Edu) is summarised after it: it is about the end of training,
# which our numbers before training say nothing about.

# %% tags=["hide-input"]
page.md(Sc.beside_paper(rows))
page.md(opt_deus_sentence())

# %% [markdown]
# **What the ladder cannot separate.** The four models differ in more than size: SmolLM2-135M and both Qwen models
# are instruction-tuned, the Qwen models are also code-tuned, Gemma-3-270M is a base model of another family, and
# every checkpoint was quantised (SmolLM2 to Q4_1, Gemma and Qwen-1.5B to Q4_K_M, Qwen-0.5B from AWQ int4 to
# mostly Q5_0). The two Qwen sizes share family, tuning and tokenizer, so a change between them is the cleanest
# size effect the ladder has; a change between families is not.
#
# ## How this was run
# The ladder is measured apart from the book, model by model and item by item (each item stored as it finishes),
# and this page reads what is stored; how to run it and what it costs: {doc}`../reproduce`.

# %% tags=["hide-input"]
parts = {"c1": "C1 weight types", "predictor": "predictor seeds", "init": "models grown before training",
         "code": "code-set items"}
stands = []
for line in d["status"]:
    name, *cells = line.split()
    counts = dict(zip(cells[::2], cells[1::2]))
    done = {p: tuple(map(int, counts.get(p, "0/0").split("/"))) for p in parts}
    stands.append({"model": Sc.model_name(name), "_complete": all(a == b for a, b in done.values()),
                   "_ladder": name in S["models"],
                   **{what: f"{done[p][0]} of {done[p][1]}" if done[p][1] else "–" for p, what in parts.items()}})
page.table(pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in stands]), index=False,
           caption=page.caption("What each model of the ladder, and the quantisation control, has measured of what is "
                                "planned, per part (–: nothing planned)."))
complete = [r["model"] for r in stands if r["_ladder"] and r["_complete"]]
page.md(f"Fully measured: {len(complete)} of {len(S['models'])} models of the ladder ({and_list(complete) if complete else 'none'})."
        + (f" No results at all for {and_list([Sc.model_name(m) for m in d['missing']])}." if d["missing"] else ""))
page.profile_note()
verdicts = []                   # a chapter beyond the paper: the claims' verdicts stay with chapters 1-3
page.finish(verdicts)
