"""The profile's continual pre-training comparison: grow the model by each method, train what that
method trains on the same tokens in the same order, then evaluate the trained models.

    python -m lesa.study.cpt --profile cpu        # results/cpu/cpt/<run>/ and results/cpu/downstream/

What each run trains is explicit (TRAINS, ABLATIONS), never inferred from its name. Runs are resumable
and reused (lesa.train.trainer); grown models are rebuilt on demand, one at a time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from ..train.checkpoint import load_trained_weights
from ..data.prepare import corpus_for
from ..eval.evaluate import evaluate_suite
from ..grow.expand import apply_plan
from ..core.flops import step_cost_ratios
from ..core.ledger import median_seed
from ..grow.plans import build_plan
from ..grow.methods import METHODS as METHOD_TABLE
from ..grow.predictor import PredictorConfig
from .profiles import load_profile, load_profile_model, tokenizer_of
from ..core.store import cache_dir, provenance, read_json, run_main, write_json
from ..train.trainer import TrainConfig, train
from ..core.layout import Results
from ..core.precision import resolve_precision
from ..eval.harness import _reusable

BASE = "base"          # the unexpanded model, continually pre-trained on the same tokens (all layers)

# What a method's CPT run trains, as its paper does it (the method table, lesa.grow.methods). "new": only the
# layers the growth added (the original ones frozen: LESA, LLaMA Pro and the LESA-placed controls); "all": every
# weight, embeddings and LM head included (SOLAR continues pre-training the whole up-scaled model; base has no new
# layers).
TRAINS = {m: r.trains for m, r in METHOD_TABLE.items() if r.trains}

# Methods whose grown weights do not depend on a predictor seed (their runs need no cpt.lesa_seed)
SEEDLESS = {m for m, r in METHOD_TABLE.items() if r.trains and not r.seeded}

# Ablations a profile asks for per method (cpt.<key>: [methods]) -> (what trains, run-name suffix).
ABLATIONS = {
    "unfrozen": ("all", "unfrozen"),     # the freezing ablation (C12b): every weight trains
    "dup_only": ("new", "dup"),          # SOLAR with only its duplicated layers trained
}


def run_names(cpt: dict, variants: dict | None = None) -> dict[str, dict]:
    """run name -> {method, options, steps, seed, trains ("new" | "all"), ablation (None or an ABLATIONS key),
    predictor_seed, replicate, entry (the cpt.methods entry it runs, or the ablation's name)} for methods x
    budgets x seeds, plus each requested ablation (largest budget, first seed). A method may name one of the
    profile's `expansion.variants` (e.g. "lesa_fp-0.1": its plan method and options). ``replicate``: a run that repeats its method on another data or predictor seed
    than the method's first (its held-out curve gives the spread; see ``evaluated_runs``)."""
    steps = cpt["train"]["steps"]
    budgets = cpt.get("budgets") or [steps]
    seeds = cpt.get("seeds") or [cpt["train"].get("seed", 0)]
    variants = variants or {}
    resolve = {m: (variants[m]["method"], {k: v for k, v in variants[m].items() if k != "method"})
               if m in variants else (m, {}) for m in cpt["methods"]}
    unknown = [m for m, (pm, _) in resolve.items() if pm not in TRAINS]
    unknown += [m for k in ABLATIONS for m in cpt.get(k, []) if m not in TRAINS]
    if unknown:
        raise ValueError(f"cpt methods {unknown} have no entry in lesa.study.cpt.TRAINS and are not variants of the "
                         f"profile (expansion.variants); known: {sorted(TRAINS)} and {sorted(variants)}")
    for key in ("data_seeds", "predictor_seeds"):
        extra = sorted(set(cpt.get(key) or {}) - set(cpt["methods"]))
        if extra:
            raise ValueError(f"cpt.{key} names {extra}, which are not in cpt.methods {cpt['methods']}")
    runs: dict[str, dict] = {}
    for method in cpt["methods"]:
        pm, opts = resolve[method]
        d_seeds = (cpt.get("data_seeds") or {}).get(method) or (seeds if method != BASE else seeds[:1])
        p_seeds = (cpt.get("predictor_seeds") or {}).get(method) or [None]   # None: the profile's cpt.lesa_seed
        for b in budgets:
            for s in d_seeds:
                for ps in p_seeds:
                    name = (method + (f"-{b}" if len(budgets) > 1 else "") + (f"-seed{s}" if len(d_seeds) > 1 or len(seeds) > 1 else "")
                            + (f"-p{ps}" if len(p_seeds) > 1 else ""))
                    runs[name] = {"method": pm, "options": opts, "steps": b, "seed": s, "trains": TRAINS[pm],
                                  "ablation": None, "predictor_seed": ps,
                                  "replicate": s != d_seeds[0] or ps != p_seeds[0], "entry": method}
    for key, (trains, suffix) in ABLATIONS.items():
        for method in cpt.get(key, []):
            if method == BASE or TRAINS[method] == trains:
                raise ValueError(f"cpt.{key}: {method!r} already trains {TRAINS[method]!r} layers by default; "
                                 f"the {key} ablation needs a grown method that trains the other set")
            runs[f"{method}-{suffix}"] = {"method": method, "options": {}, "steps": budgets[-1], "seed": seeds[0],
                                          "trains": trains, "ablation": key, "predictor_seed": None,
                                          "replicate": False, "entry": f"{method}-{suffix}"}
    return runs


def evaluated_runs(runs: dict[str, dict], cpt: dict) -> list[str]:
    """The runs that get the post-training suite. ``cpt.eval_replicates`` (default true): every run; false:
    only each method's first seed (a list: false, except for the methods it names, whose every seed is evaluated), because a seed replicate is there for its held-out curve (the spread a
    difference must beat), and the suite costs about as much as the training on a 2-core CPU (cpu-long).
    ``cpt.curves_only``: cpt.methods entries trained for their held-out curves alone (a diagnostic run)."""
    flag = cpt.get("eval_replicates", True)
    if isinstance(flag, list):           # the methods whose every seed gets the suite (the one seed rule)
        _method_entries(cpt, "eval_replicates")
    elif not isinstance(flag, bool):
        raise ValueError(f"cpt.eval_replicates must be true, false or a list of cpt.methods entries, got {flag!r}")
    every = lambda r: flag is True or (isinstance(flag, list) and r.get("entry") in flag)
    curves = _method_entries(cpt, "curves_only")
    return [n for n, r in runs.items() if (every(r) or not r.get("replicate")) and r.get("entry") not in curves]


def _method_entries(cpt: dict, key: str) -> list[str]:
    """``cpt[key]``, a list of cpt.methods entries (curves_only, optional); a name not among them is an error."""
    names = cpt.get(key) or []
    extra = sorted(set(names) - set(cpt.get("methods") or []))
    if extra:
        raise ValueError(f"cpt.{key} names {extra}, which are not in cpt.methods {cpt.get('methods')}")
    return names


def required_runs(runs: dict[str, dict], cpt: dict) -> dict[str, dict]:
    """The runs a profile's results must all have before they replace a shorter profile's in the book
    (lesa.study.analysis.complete_cpt_profiles). ``cpt.optional``: cpt.methods entries that do not hold that back, a
    test that one section of a chapter reads and reports as not yet run while it is missing (cpu-long: the
    spectrum test of chapter 6); no claim reads them. ``cpt.optional_replicates``: cpt.methods entries whose seed
    replicates do not hold it back either (their first seed does): the claims that read every seed apply the one
    seed rule to the seeds that exist and say how many (cpu-long: LESA's predictor seeds 0 and 2, added later)."""
    optional = _method_entries(cpt, "optional")
    extra = _method_entries(cpt, "optional_replicates")
    return {n: r for n, r in runs.items() if r.get("entry") not in optional
            and not (r.get("replicate") and r.get("entry") in extra)}


def run_cpt_comparison(models: dict[str, Any], shards_dir: str | Path, heldout_dir: str | Path | None,
                       profile: str, cfg: TrainConfig, *, results_root: str | Path | None = None,
                       ckpt_root: str | Path | None = None, overrides: dict[str, dict] | None = None,
                       run_info: dict[str, dict] | None = None, reference: str | None = None,
                       force: bool = False, finished: dict[str, dict] | None = None) -> dict[str, dict]:
    """Train each model with the same config, seed and data order; write results/<profile>/cpt/<name>/.

    ``models``: name -> module, saved folder, or zero-argument callable returning a module (loaded lazily,
    one at a time). ``overrides``: name -> TrainConfig fields for that run only, e.g.
    ``{"solar": {"train_all": True}}``. ``run_info``: name -> what the run is (recorded in its summary).
    A run whose summary.json has the same run key and is complete is reused, an interrupted one resumed
    from its checkpoint, one whose checkpoint is of an older configuration retrained (``force`` retrains). Checkpoints go to ``ckpt_root`` (default .cache/cpt/).
    comparison.json also holds each run's s/step and FLOPs/token against ``reference`` (default: the
    first run), measured and by the FLOP model (claim C6). ``finished``: name -> summary of runs not trained
    here (finished, their weights not needed), listed in comparison.json beside the others.
    """
    res = Results(profile, results_root)
    out: dict[str, dict] = {}
    seeds: dict[str, int] = {}
    for name, spec in models.items():
        run_cfg = TrainConfig.from_dict({**cfg.to_dict(), **(overrides or {}).get(name, {})})
        seeds[name] = run_cfg.seed
        model = spec() if callable(spec) and not isinstance(spec, torch.nn.Module) else spec
        ck = Path(ckpt_root) / profile / name if ckpt_root else cache_dir("cpt", profile, name)
        out[name] = train(model, shards_dir, heldout_dir, res.cpt(name), run_cfg, ckpt_dir=ck,
                          name=name, resume=not force, replace_stale=True, run_info=(run_info or {}).get(name))
        del model
    for name, summary in (finished or {}).items():
        out[name], seeds[name] = summary, summary.get("config", {}).get("seed")
    keys = ("steps", "tokens", "final_loss", "initial_heldout_ppl", "final_heldout_ppl", "tokens_per_s",
            "step_s_median", "flops_per_token", "mfu", "precision", "data_order_hash", "run")
    by_seed: dict[int, set] = {}
    for n, s in out.items():                       # runs with the same seed must see the same tokens
        by_seed.setdefault(seeds[n], set()).add(s.get("data_order_hash"))
    reference = reference or next(iter(out), None)
    write_json(res.cpt("comparison.json"),
               {"profile": profile, "runs": {n: {"seed": seeds[n], **{k: s.get(k) for k in keys}}
                                             for n, s in out.items()},
                "same_data_order": all(len(h) == 1 for h in by_seed.values()),
                "step_cost_reference": reference,
                "step_cost": step_cost_ratios(out, reference) if reference else {},
                "provenance": provenance()})
    return out


def lesa_before_training(path: Path, model: str, sets: list[str] | None = None) -> dict[int, float]:
    """predictor seed -> LESA's perplexity before training on ``model`` in notebook 3's expansion.json (``path``): the
    first of the protocol's ``sets`` measured (default: WikiText)."""
    recs = read_json(path)["models"][model]["results"]["lesa"]
    vals = {}
    for s, r in recs.items():
        v = next((r["ppl"][k]["value"] for k in sets or ["wikitext"] if r.get("ppl", {}).get(k, {}).get("status") == "ok"),
                 None)
        if v is not None:
            vals[int(s)] = v
    return vals


def lesa_seed(prof: dict) -> tuple[int, str]:
    """The predictor seed of the learned methods' CPT runs, and why: ``cpt.lesa_seed`` is an int, or
    "median" = the seed whose LESA model has the median perplexity before training in notebook 3
    (results/<profile>/03_expansion/expansion.json, else its parent profile's; the protocol's headline set). One CPT run per method
    cannot carry LESA's seed spread; the median seed is the honest single draw (issue: seeds)."""
    choice = (prof.get("cpt") or {}).get("lesa_seed", 0)
    if isinstance(choice, bool) or not isinstance(choice, (int, str)) or (isinstance(choice, str) and choice != "median"):
        raise ValueError(f"cpt.lesa_seed must be an int or 'median', got {choice!r}")
    if choice != "median":
        return int(choice), f"seed {choice} (set in the profile)"
    # a profile that extends another (cpu-long: cpu) shares its notebook 3 when it has none of its own
    paths = [Results(p).chapter("03_expansion") / "expansion.json" for p in (prof["name"], prof.get("extends")) if p]
    path = next((p for p in paths if p.exists()), paths[0])
    if not path.exists() and "scale" in prof:        # a ladder model's CPT (qwen05-cpt): the scale ladder's seeds
        seed, vals = median_seed(prof["model"]["name"], root=None)
        return seed, (f"seed {seed}, the median of LESA's perplexity before training on the scale ladder "
                      f"({', '.join(f'seed {s}: {v:.4g}' for s, v in sorted(vals.items()))})")
    if not path.exists():
        raise FileNotFoundError(f"cpt.lesa_seed is 'median' but {path} does not exist: run notebook 3 first "
                                f"(python -m lesa.book run --profile {prof['name']} --only 03_expansion), "
                                f"or set cpt.lesa_seed to an int")
    vals = lesa_before_training(path, prof["model"]["name"], (prof.get("protocol") or {}).get("sets"))
    if not vals:
        raise ValueError(f"{path} holds no LESA perplexity before training; re-run notebook 3")
    order = sorted(vals, key=vals.get)
    seed = order[(len(order) - 1) // 2]            # the lower median for an even count
    per = ", ".join(f"seed {s}: {vals[s]:.4g}" for s in sorted(vals))
    return seed, f"seed {seed}, the median of LESA's perplexity before training ({per}; notebook 3)"


def start_seeds(prof: dict, runs: dict[str, dict], names: list[str]) -> dict[str, int | None]:
    """Each named run's predictor seed as its grown start has it: the run's own (a seed sweep), else the
    profile's cpt.lesa_seed (decided only when some run needs it); None for the methods that predict nothing
    (SEEDLESS). For the readers that rebuild a run's start (lesa.study.diagnose, lesa.study.step_cost)."""
    need = any(runs[n]["method"] not in SEEDLESS and runs[n]["predictor_seed"] is None for n in names)
    profile_seed = lesa_seed(prof)[0] if need else None
    return {n: None if runs[n]["method"] in SEEDLESS else profile_seed if runs[n]["predictor_seed"] is None
            else runs[n]["predictor_seed"] for n in names}


def _grower(prof: dict, method: str, seed: int = 0, options: dict | None = None):
    def build():
        model, _, key = load_profile_model(prof, tokenizer=False)
        if method == BASE:
            return model
        plan = build_plan(method, model.config.num_hidden_layers, prof["model"].get("target_layers"), **(options or {}))
        # built exactly as notebook 3 builds it (same PredictorConfig), so the predicted layers come from the cache
        pred = PredictorConfig(epochs=prof["predictor"]["epochs"], seed=seed, device=prof["device"])
        return apply_plan(model, plan, pred, copy_weights=False, cache_key=key)
    return build


def run_profile_cpt(profile: str = "auto", evaluate: bool = True, force: bool = False,
                    only: list[str] | None = None, results_root: str | Path | None = None,
                    ckpt_root: str | Path | None = None) -> dict:
    """Train (and evaluate) the profile's runs one after another: each run's training, then its evaluation,
    so an interruption loses at most the run in progress (and that one resumes from its last checkpoint).
    ``only``: these run names (see ``--list``); the rest are left as they are. ``results_root`` (default
    results/) and ``ckpt_root`` (default .cache/cpt/): elsewhere, e.g. a test's run in another precision."""
    prof = load_profile(profile)
    cpt = prof.get("cpt") or {}
    if "train" not in cpt or "methods" not in cpt:
        raise ValueError(f"profile {prof['name']!r} has no cpt.train / cpt.methods section")
    runs = run_names(cpt, (prof.get("expansion") or {}).get("variants"))
    bad = sorted(set(only or []) - set(runs))
    if bad:
        raise ValueError(f"--only {bad}: no such run in profile {prof['name']!r}; its runs: {list(runs)}")
    selected = [n for n in runs if not only or n in only]
    if all(runs[n]["method"] in SEEDLESS or runs[n]["predictor_seed"] is not None for n in selected):
        seed, why = 0, "seed not used (no selected run predicts weights with the profile's seed)"
    else:
        seed, why = lesa_seed(prof)
    print(f"[cpt] predictor {why}")
    corpus = corpus_for(tokenizer_of(prof["model"]["name"]), fast=True if prof["name"] == "smoke" else None)
    base = TrainConfig.from_dict({**cpt["train"], "device": prof["device"]})
    reference = next((n for n, r in runs.items() if r["method"] == "lesa" and not r["ablation"]), None)
    pseed = {name: seed if r["predictor_seed"] is None else r["predictor_seed"] for name, r in runs.items()}

    def train_runs(names: list[str], finished: dict[str, dict] | None = None, force: bool = force) -> dict[str, dict]:
        return run_cpt_comparison(
            {n: _grower(prof, runs[n]["method"], pseed[n], runs[n]["options"]) for n in names},
            corpus / "train", corpus / "heldout", prof["name"], base, force=force, results_root=results_root,
            ckpt_root=ckpt_root,
            reference=reference if reference in names or reference in (finished or {}) else None, finished=finished,
            overrides={n: {"steps": runs[n]["steps"], "seed": runs[n]["seed"], "train_all": runs[n]["trains"] == "all"}
                       for n in names},
            run_info={n: {"method": runs[n]["method"], "options": runs[n]["options"], "trains": runs[n]["trains"],
                          "ablation": runs[n]["ablation"], "predictor_seed": pseed[n],
                          "predictor_seed_choice": why if runs[n]["predictor_seed"] is None else "a predictor-seed sweep"}
                      for n in names})

    to_evaluate = set(evaluated_runs(runs, cpt)) if evaluate and cpt.get("eval") else set()
    res = Results(prof["name"], results_root).dir
    kept = {} if force else kept_runs(prof, selected, to_evaluate, results_root, ckpt_root)
    for n in selected:
        if n in kept:
            print(f"[cpt] {n}: finished" + (" and evaluated" if n in to_evaluate else "") + "; its weights are not "
                  "cached here and nothing needs them: not trained again")
            continue
        train_runs([n])
        if n in to_evaluate:        # --force retrains, so it evaluates afresh too (no record of the old weights kept)
            evaluate_runs(prof, {n: runs[n]}, pseed, results_root, ckpt_root, reuse=not force)
    # every run finished: reused; comparison.json over them (the kept ones from their summaries). Never forced: each
    # was just trained, so it resumes at its last step (forced, it trained every run a second time from scratch and
    # a stop in between lost the first training's logs). The profile's other finished runs join from their
    # summaries, so that the file does not depend on which runs the last command named (--only)
    others = {n: s for n in runs if n not in selected and (s := finished_summary(res, n))}
    return train_runs([n for n in selected if n not in kept], {**kept, **others}, force=False)


def kept_runs(prof: dict, names: list[str], to_evaluate: set[str], results_root: str | Path | None = None,
              ckpt_root: str | Path | None = None) -> dict[str, dict]:
    """name -> summary of the runs run_profile_cpt leaves as they are: finished, their weights not cached (a fresh
    checkout) and nothing needing them, i.e. not evaluated or every record of their suite already there in the
    profile's precision. A finished run with cached weights goes through training again, which resumes at its
    last step (nothing to train), then its evaluation reuses what it can."""
    res = Results(prof["name"], results_root).dir
    return {n: s for n in names if (s := finished_summary(res, n)) and not _has_weights(prof, n, ckpt_root)
            and (n not in to_evaluate or suite_done(prof, n, s, results_root))}


def cpt_work(prof: dict, results_root: str | Path | None = None,
             ckpt_root: str | Path | None = None) -> dict[str, list[str]]:
    """What run_profile_cpt (everything, evaluating) would do now: {"train": runs it trains, from scratch or from
    their last checkpoint, "evaluate": runs whose post-training suite it runs or completes}. A finished run whose
    records are in another precision (``LESA_PRECISION=bf16`` over a committed fp32 book) trains again: the weights
    it would evaluate are not here."""
    cpt = prof.get("cpt") or {}
    runs = run_names(cpt, (prof.get("expansion") or {}).get("variants")) if "train" in cpt else {}
    to_evaluate = set(evaluated_runs(runs, cpt)) if cpt.get("eval") else set()
    kept = kept_runs(prof, list(runs), to_evaluate, results_root, ckpt_root)
    res = Results(prof["name"], results_root).dir
    # a finished run with its weights cached resumes at its last step: nothing left to train
    train = [n for n in runs if n not in kept and not (finished_summary(res, n) and _has_weights(prof, n, ckpt_root))]
    done = lambda n: (s := finished_summary(res, n)) and suite_done(prof, n, s, results_root)  # noqa: E731
    return {"train": train, "evaluate": [n for n in runs if n in to_evaluate and (n in train or not done(n))]}


def _has_weights(prof: dict, name: str, ckpt_root: str | Path | None = None) -> bool:
    """Run ``name``'s trained weights are cached here (its checkpoint folder points at a newest checkpoint)."""
    return (_ckpt(prof, name, ckpt_root) / "latest.json").exists()


def _ckpt(prof: dict, name: str, ckpt_root: str | Path | None = None) -> Path:
    """Run ``name``'s checkpoint folder (as run_cpt_comparison places it)."""
    return Path(ckpt_root) / prof["name"] / name if ckpt_root else cache_dir("cpt", prof["name"], name)


def suite_done(prof: dict, name: str, summary: dict, results_root: str | Path | None = None) -> bool:
    """Every record of the profile's post-training suite exists for run ``name``'s final weights (the run key
    and step of ``summary``), with the profile's limits and precision (as evaluate_suite's skip_done reads them)."""
    ev = prof["cpt"]["eval"]
    out = Results(prof["name"], results_root).downstream(name)
    lim = ev.get("limits")
    wid = {"run_key": summary.get("run_key"), "step": summary.get("steps"),
           **({"init_key": summary["init_key"]} if summary.get("init_key") else {})}
    keys = [f"ppl_{s}" for s in ev.get("ppl_sets", [])] + list(ev.get("tasks", []))
    prec = resolve_precision(ev.get("precision", "fp32"))       # records hold the resolved value, never "auto"
    return all(_reusable(out / f"{k}.json", lim.get(k) if isinstance(lim, dict) else lim, wid, prec) for k in keys)


def evaluate_runs(prof: dict, runs: dict[str, dict], seeds: dict[str, int] | None = None,
                  results_root: str | Path | None = None, ckpt_root: str | Path | None = None,
                  reuse: bool = True) -> None:
    """Load each run's trained weights into a freshly grown model and run the profile's eval suite. Records of the
    same weights (run key, step and starting weights: lesa.eval.harness.same_weights) are reused unless ``reuse``
    is False."""
    ev = prof["cpt"]["eval"]
    out = Results(prof["name"], results_root).downstream()
    _, tok, _ = load_profile_model(prof)
    for name, r in runs.items():
        model = _grower(prof, r["method"], (seeds or {}).get(name, 0), r["options"])()
        ckpt = _ckpt(prof, name, ckpt_root)
        step = load_trained_weights(model, ckpt)
        latest = read_json(ckpt / "latest.json")
        weights_id = {"run_key": latest.get("run_key"), "step": step,
                      **({"init_key": latest["init_key"]} if latest.get("init_key") else {})}
        print(f"[cpt] evaluating {name} at step {step}")
        evaluate_suite(model.eval(), tok, label=name, out_dir=out, tasks=ev["tasks"], ppl_sets=ev["ppl_sets"],
                       limit=ev.get("limits"), batch_size=ev.get("batch_size", 8),
                       ppl_max_length=ev.get("ppl_max_length"), skip_done=reuse, weights_id=weights_id,
                       precision=ev.get("precision", "fp32"))
        del model


def finished_summary(results: Path, name: str) -> dict | None:
    """Run ``name``'s summary.json under ``results`` (results/<profile>) when its training finished, else None."""
    path = results / "cpt" / name / "summary.json"
    summary = read_json(path) if path.exists() else {}
    return summary if summary.get("completed") else None


def run_status(profile: str, name: str) -> str:
    """Where a run stands, for ``--list``: evaluated / trained (with its measured training wall-clock, and
    whether its weights are here to evaluate) / stopped at a checkpoint (resumes there) / not started."""
    res = Results(profile).dir
    s = finished_summary(res, name)
    latest = cache_dir("cpt", profile) / name / "latest.json"
    if s:
        done = "evaluated" if (res / "downstream" / name).is_dir() else "trained"
        gone = "" if latest.exists() or done == "evaluated" else "; weights not cached here: evaluating it trains it again"
        return f"{done} ({s.get('elapsed_s', 0) / 60:.0f} min training, {s.get('step_s_median', 0):.1f} s/step{gone})"
    if latest.exists():
        return f"stopped at step {read_json(latest).get('step')} (resumes there)"
    return "not started"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa.study.cpt", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--no-eval", action="store_true", help="train only")
    ap.add_argument("--force", action="store_true", help="retrain even when a finished run exists")
    ap.add_argument("--only", nargs="+", default=None, metavar="RUN", help="train and evaluate only these runs")
    ap.add_argument("--list", action="store_true", help="print the profile's runs and what each trains, then exit")
    args = ap.parse_args(argv)
    if args.list:
        prof = load_profile(args.profile)
        runs = run_names(prof["cpt"], (prof.get("expansion") or {}).get("variants"))
        evaluated = evaluated_runs(runs, prof["cpt"])
        for name, r in runs.items():
            print(f"{name:28s} {r['method']:16s} {r['options'] or ''!s:16s} steps {r['steps']:>6}  data seed {r['seed']}  "
                  f"predictor seed {'-' if r['method'] in SEEDLESS else 'cpt.lesa_seed' if r['predictor_seed'] is None else r['predictor_seed']:<13}  "
                  f"trains {r['trains']}" + (f"  ({r['ablation']})" if r["ablation"] else "")
                  + ("  (curve only)" if name not in evaluated else "") + f"  [{run_status(prof['name'], name)}]")
        return 0
    run_profile_cpt(args.profile, evaluate=not args.no_eval, force=args.force, only=args.only)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
