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
# # 4. Continual pre-training: cost curves (claims C2, C4, C6, C12a, C12b)
#
# **About this notebook**
#
# - **Shows**: the loss curves of the CPT runs against steps, tokens, FLOPs and time; the verdicts on C2, C4,
#   C6, C12a and C12b.
# - **Time** (2 CPU cores): seconds on every profile once the CPT runs exist; the CPT runs themselves come from
#   `python -m lesa.cpt --profile <profile>` (`cpu`: about half an hour for the five runs and their evaluation),
#   not from this notebook. Every run's wall-clock is recorded in `results/<profile>/book_run.json`.
# - **Profile**: set `profile` in the parameters cell below (`smoke`: a tiny random model that only checks the
#   code paths; `cpu`; `gpu`), or run `python -m lesa.book run --profile cpu --only 04_cpt_curves` from the
#   repository root.
#
# * **C2**: heuristic duplication (LLaMA Pro, SOLAR) gives a poorer start and slower convergence than LESA.
# * **C4**: LESA converges faster: the same loss as LLaMA Pro with less than half the compute.
# * **C6**: LESA's steps are cheaper than LLaMA Pro's and SOLAR's.
# * **C12a**: LESA w/o SVD is worse than LESA but better than LLaMA Pro, after training at equal steps (at
#   step 0 LLaMA Pro is the base model itself, so the claim is not about initialisation).
# * **C12b**: training all parameters instead of only the new layers converges more slowly and noisily.
#
# This notebook reads the CPT runs of this profile (`results/<profile>/cpt/<run>/`, written by `lesa.train`); it
# does not train. Every run sees the same batches in the same order, so two runs are compared step by step
# (paired differences over a window of steps, with their standard error). Where this profile has no runs but
# committed GPU runs exist, it renders those and says so.

# %% tags=["parameters", "remove-cell"]
profile: str = "smoke"          # configs/<profile>.yaml: smoke | cpu | gpu | paper (sizes and budgets only)
results_root: str = "results"   # outputs go to <results_root>/<profile>/<notebook>/ (relative to the repo root)
smooth_window: int = 10         # moving-mean window (steps) for loss curves, "steps to reach" and paired windows
fallback_profiles: list = ["gpu"]  # profiles whose committed CPT results are shown when this one has none

# %% tags=["hide-input"]
import pandas as pd

from lesa import analysis as A, claims as C, plots as P
from lesa.page import Page
from lesa.store import write_json

page = Page("04_cpt_curves", profile, results_root)
cpt_dir, source = A.find_results(profile, "cpt", tuple(fallback_profiles), results_root)
runs = A.load_cpt_runs(cpt_dir) if cpt_dir else {}
if not runs:
    page.md(f"**Not yet run for profile `{profile}`**: no CPT runs under `results/{profile}/cpt/` (nor under "
            f"{', '.join(f'results/{p}/cpt/' for p in fallback_profiles)}). Run `python -m lesa.cpt --profile {profile}` "
            "and re-execute this notebook.")
elif source != profile:
    page.md(f"**Rendered from committed `{source}` results** (`{cpt_dir}`): this profile has no CPT runs.")
if runs:
    summ = pd.DataFrame([{"run": n, "method": r["method"], "frozen": r["frozen"], "completed": r["completed"],
                          "steps": r["summary"].get("steps"), "tokens": r["summary"].get("tokens"),
                          "final loss": r["summary"].get("final_loss"),
                          "held-out PPL start": r["summary"].get("initial_heldout_ppl"),
                          "held-out PPL end": r["summary"].get("final_heldout_ppl"),
                          "median step s": r["summary"].get("step_s_median"),
                          "GFLOP/token": (r["summary"].get("flops_per_token") or 0) / 1e9} for n, r in runs.items()])
    page.table(summ, csv="cpt_runs.csv", index=False)
    page.md("The held-out perplexities in this table are the trainer's monitoring during CPT (its `eval_sequences` "
            "held-out sequences), not the perplexity protocol; notebook 5 evaluates the trained models under the protocol.")

# %% tags=["hide-input"]
if runs:
    for x in ("step", "tokens", "flops", "elapsed_s"):
        page.save(P.cpt_curves(runs, x, smooth_window), f"loss_vs_{x}")
    if any(r["eval"] for r in runs.values()):
        page.save(P.heldout_curves(runs), "heldout_ppl")

# %% tags=["hide-input"]
frozen = A.runs_by_method(runs, frozen=True)
unfrozen = A.runs_by_method(runs, frozen=False)
cmp = A.cpt_comparison({n: r for n, r in runs.items() if r["method"] != "base"}, smooth_window) if runs else {}
write_json(page.out / "cpt_comparison.json", {"source_profile": source, **cmp})
rows = lambda m, d=frozen: d[m]["train"] if m in d else None
lesa = frozen.get("lesa")
budget = ({"steps": lesa["train"][-1].get("step"), "tokens": lesa["train"][-1].get("tokens"), "CPT seeds": 1}
          if lesa else {})
verdicts = [
    C.judge_c2({m: rows(m) for m in ("lesa", "llama_pro", "solar") if rows(m)}, smooth_window, budget=budget),
    C.judge_c4(rows("lesa"), rows("llama_pro"), smooth_window, budget=budget),
    C.judge_c6({m: [x["step_s"] for x in r["train"][1:]] for m, r in frozen.items() if len(r["train"]) > 1},
               budget=budget),
    C.judge_c12a(rows("lesa"), rows("lesa_raw"), rows("llama_pro"), smooth_window, budget=budget),
    C.judge_c12b(rows("lesa"), rows("lesa", unfrozen), smooth_window, budget=budget),
]
page.finish(verdicts, source_profile=source)
