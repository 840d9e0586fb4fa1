"""The book's benchmark tables: every results/bench/*.json rendered as Markdown with its provenance."""
from __future__ import annotations

import json
from pathlib import Path


from ..grow.methods import label
from ..core.models import model_label, profile_label
from ..core.store import commit_label, hardware_label, read_json
from ..core.layout import Results
from ..claims.paper import fmt
from ..core.precision import HOST_WORDS, host_class


def _prov(d: dict, path: Path) -> str:
    p = d.get("provenance") or {}
    v = p.get("versions", {})
    return (f"Measured {p.get('time_utc')} at commit {commit_label(p.get('commit'))} on "
            f"{hardware_label(p.get('hardware'))}; torch {v.get('torch')}, transformers {v.get('transformers')}. "
            f"Source: `results/bench/{path.name}`.")


def _table(head: list[str], rows: list[list]) -> list[str]:
    cell = lambda x: x if isinstance(x, str) else fmt(x)
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(cell(x) for x in r) + " |" for r in rows), ""]


def _narrow(head: list[str], rows: list[list], keys: int = 1, width: int = 4) -> list[str]:
    """A wide table as several that fit a phone's width: each repeats the first `keys` columns and takes up to
    `width - keys` of the rest, in order (a seven-column table scrolls sideways at 390 px)."""
    step, out = width - keys, []
    for i in range(keys, len(head), step):
        out += _table(head[:keys] + head[i:i + step], [r[:keys] + r[i:i + step] for r in rows])
    return out


def _on(d: dict) -> str:
    return "a GPU" if str(d["device"]).startswith("cuda") else "the CPU"


def _grown(d: dict) -> str:
    """A training record's model in words: SmolLM2-135M grown by LLaMA Pro to 45 layers (15 new), on the CPU."""
    return (f"{model_label(d['label'])} grown by {label(d['method'])} to {d['layers']} layers "
            f"({len(d['new_layers'])} new), on {_on(d)}")


def _md_expansion(d: dict, path: Path) -> list[str]:
    steps = d.get("max_steps_measured")
    predictor = f"a 10-epoch predictor scaled from {steps} measured steps" if steps else "the 10-epoch predictor"
    # one table per stage (SVD, a predictor training step, the full recipe), each fitting the text column
    svd = [[r["weight"], "x".join(map(str, r["shape"])), r["ours_svd_s"], r["released_svd_s"], r["svd_speedup"]]
           for r in d["rows"]]
    step = [[r["weight"], 1e3 * r["ours_train_s"] / r["ours_steps"], 1e3 * r["released_train_s"] / r["released_steps"],
             r["train_step_speedup"]] for r in d["rows"]]
    recipe = [[r["weight"], r["ours_full_recipe_s"], r["released_full_recipe_s"]] for r in d["rows"]]
    return [f"### Expansion: {model_label(d['label'])} on {_on(d)}", "", _prov(d, path), "",
            "SVD of each weight type's stack of layers (L layers, out x in), seconds:", "",
            *_table(["weight", "stack (L, out, in)", "ours s", "released s", "x"], svd),
            "One predictor training step, milliseconds:", "",
            *_table(["weight", "ours ms", "released ms", "x"], step),
            "Full recipe per weight type, seconds:", "",
            *_table(["weight", "ours s", "released s"], recipe),
            f"Full recipe (load, SVD and {predictor} for every weight type): **{d['ours_full_recipe_s']:.1f} s** "
            f"against {d['released_full_recipe_s']:.1f} s for the released recipe, **x{d['speedup']:.2f}**; "
            f"peak memory {d['peak_mem_gb']:.1f} GiB.", "", *_md_end_to_end(d.get("end_to_end"))]


def _md_e2e(d: dict, path: Path) -> list[str]:
    return [f"### Expansion end to end: {model_label(d['label'])} on {_on(d)}", "", _prov(d, path), "",
            *_md_end_to_end(d["end_to_end"])]


def _md_end_to_end(e: dict | None) -> list[str]:
    if not e:
        return []
    verdict = "within" if e["total_s"] <= e["goal_s"] else "over"
    return [f"End to end as `lesa expand` runs it ({e['predictor_workers']} predictor process(es) on "
            f"{e['cpus']} CPUs): load {e['load_s']:.1f} s + grow {e['grow_s']:.1f} s (of which SVD "
            f"{e['svd_s']:.1f} s) + save {e['save_s']:.1f} s = **{e['total_s']:.1f} s**, {verdict} the "
            f"{e['goal_s']:.0f} s a user should wait for a grown checkpoint on this machine.", "", *_md_flush(e), *_md_batched(e)]


def _md_batched(e: dict) -> list[str]:
    if "total_s_batched" not in e:
        return []
    return [f"Predictors of the weight types that share an input width trained as one batched MLP "
            f"(`PredictorConfig(batched=True)`): end to end {e['total_s_batched']:.1f} s against "
            f"{e['total_s_one_by_one']:.1f} s one by one in the same run (x{e['total_s_one_by_one'] / e['total_s_batched']:.2f}); "
            f"the grown weights differ by at most {e['batched_vs_one_by_one_max_abs_diff']:.1e} (summation order).", ""]


def _md_flush(e: dict) -> list[str]:
    if "grow_s_denormals_kept" not in e:
        return []
    same = "identical bit for bit" if e["identical_with_denormals_kept"] else "**NOT identical**"
    return [f"The CPU fast path flushes denormal floats to zero while the predictors train "
            f"(`PredictorConfig.flush_denormal`). Grown again with denormals kept, the same expansion took "
            f"{e['grow_s_denormals_kept']:.1f} s instead of {e['grow_s']:.1f} s, and the grown model's weights are "
            f"{same}.", ""]


def _md_training(d: dict, path: Path) -> list[str]:
    # short names in the table (it must fit the text column); what they are in the sentence above it
    names = {"lesa": "lesa", "hf_trainer": "HF Trainer"}
    rows = [[names[k], r["tokens_per_s"], r["step_s_median"], "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
             r["tokens_timed"], r["tokens_seen"], f"{r['changed_tensors']} / {'yes' if r['new_layers_only'] else 'NO'}"]
            for k, r in d["trainers"].items()]
    peak = (f"peak {d['peak_tflops']} TFLOP/s ({d['peak_source']})" if d.get("peak_tflops")
            else "MFU not reported: no meaningful published peak for a CPU (pass `--peak-tflops`)")
    title = _grown(d)
    return [f"### Training: {title}", "", _prov(d, path), "",
            "lesa: the lesa trainer (`lesa.train.trainer.train`); HF Trainer: a default `transformers.Trainer`.", "",
            *_narrow(["trainer", "tokens/s", "step s (median)", "MFU", "tokens timed", "tokens seen",
                      "tensors trained / new layers only"], rows),
            f"Batch {d['batch']} x {d['seq_len']} tokens, {d['warmup_steps']} warm-up + {d['timed_steps']} timed steps "
            f"each, same sequences, same device; {d['flops_per_token'] / 1e9:.3f} GFLOP/token (lesa's count: frozen "
            f"layers above the lowest new one pay forward and input-gradient backward); {peak}. "
            f"lesa / HF Trainer tokens/s: **x{d['tokens_per_s_ratio_lesa_over_hf']:.2f}**; both trained the same "
            f"parameters: **{'yes' if d['same_trained_params'] else 'NO'}**. "
            f"Non-default `TrainingArguments`: `{json.dumps(d['hf_training_args'])}`; optimizers: "
            + ", ".join(f"{k} `{r.get('optimizer')}`" for k, r in d["trainers"].items()) + ".", "",
            *_md_precision(d.get("precision"))]


def _md_precision_file(d: dict, path: Path) -> list[str]:
    title = _grown(d)
    return [f"### Training precision: {title}", "", _prov(d, path), "", *_md_precision(d)]


def _md_precision(p: dict | None) -> list[str]:
    if not p:
        return []
    rows = [[k, r["tokens_per_s"], r["step_s_median"], r["loss"][-1], r["heldout_ppl_start"], r["heldout_ppl_end"]]
            for k, r in p["runs"].items()]
    native = {True: "has bf16 instructions", False: "has no bf16 instructions (torch emulates bf16)",
              None: "GPU"}[p.get("cpu_native_bf16")]
    return ["lesa trainer, fp32 vs bf16 autocast (fp32 trainable weights and optimizer state), stepped in turn "
            f"over the same {p['steps']} batches of {p['batch']} x {p['seq_len']} tokens (this CPU {native}):", "",
            *_narrow(["precision", "tokens/s", "step s (median)", "final loss", "held-out ppl before",
                      "held-out ppl after"], rows),
            f"bf16 / fp32 tokens/s: **x{p['tokens_per_s_ratio_bf16_over_fp32']:.2f}**; largest relative difference "
            f"bf16 vs fp32: training loss {100 * p['loss_max_rel_diff']:.2f}% over the {p['steps']} steps, held-out "
            f"perplexity {100 * (p['heldout_ppl_max_rel_diff'] or 0):.2f}% (target: at most "
            f"{100 * p['target_max_rel_diff']:.0f}%).", ""]


def _md_eval(d: dict, path: Path) -> list[str]:
    rows = [[r["task"], r["n_samples"], r["requests"], r["seconds"], r["samples_per_s"], r["requests_per_s"],
             r["batch_size"]] for r in d["rows"]]
    recorded = d.get("recorded", [])
    # the record files' folder said once above the table when they all sit in one folder as <task>.json
    folders = {str(Path(r["file"]).parent) for r in recorded}
    one_folder = len(folders) == 1 and all(Path(r["file"]).name == f"{r['task']}.json" for r in recorded)
    rec = [[r["task"], r["n_samples"], r["seconds"], r["samples_per_s"], r["batch_size"],
            f"{r['cpus']} CPU, {r['threads']} thr" if not r.get("gpu") else r["gpu"],
            *([] if one_folder else [f"`{r['file']}`"])] for r in recorded]
    out = [f"### Evaluation: {model_label(d['label'])} ({d['dtype']}) on {_on(d)}", "", _prov(d, path), "",
           *_narrow(["task", "samples", "requests", "seconds", "samples/s", "requests/s", "batch"], rows),
           f"First {d['limit']} documents per lm-eval task (requests: log-likelihood calls, timed inside the "
           f"model wrapper); perplexity: {d['ppl_limit']} WikiText document(s), requests = rolling windows"
           + "".join(f", {fmt(r['tokens_per_s'])} tokens/s" for r in d["rows"] if r.get("tokens_per_s")) + ".", ""]
    if d.get("prefix_vs_hf"):
        speed = [[r["task"], r["n_samples"], r["hf_samples_per_s"], r["prefix_samples_per_s"], f"x{fmt(r['speedup'])}"]
                 for r in d["prefix_vs_hf"]]
        tokens = [[r["task"], r["tokens_hflm"], r["tokens_prefix"], f"x{fmt(r['ceiling'])}"] for r in d["prefix_vs_hf"]]
        out += [f"Prefix-sharing LM (`lesa.eval.prefix_lm.PrefixLM`, the default) against lm-eval's HFLM, same model, "
                f"{d['prefix_vs_hf'][0]['precision']}, same run, interleaved per task:", "",
                *_table(["task", "samples", "HFLM samples/s", "prefix samples/s", "speed-up"], speed),
                "The tokens each runs, and the ceiling on the speed-up: the tokens HFLM runs over the tokens run with "
                "each context shared:", "",
                *_table(["task", "tokens HFLM", "tokens prefix", "ceiling"], tokens)]
    w = d.get("wikitext_bf16")
    if w:
        out += ([f"WikiText in bf16 (autocast, fp32 weights): {w['full_docs']} documents in {fmt(w['full_bf16_s'])} s, "
                 f"word perplexity {fmt(w['full_bf16_word_ppl'], 6)}; on the first {w['subset_docs']} documents bf16 "
                 f"differs from fp32 by {fmt(100 * w['subset_rel_diff'])} % and runs "
                 f"x{fmt(w['subset_fp32_s'] / w['subset_bf16_s'])} faster (fp32 measured on that subset only).", ""]
                if w.get("status") == "ok" else [f"WikiText in bf16: not measured ({w.get('status')}).", ""])
    if rec:
        where = f"records `{folders.pop()}/<task>.json`, " if one_folder else ""
        out += [f"From the recorded results runs (`results/base/`, {where}n_samples / seconds of each record; those "
                "runs shared the machine with other jobs):", "",
                *_narrow(["task", "samples", "seconds", "samples/s", "batch", "hardware",
                          *([] if one_folder else ["record"])], rec)]
    return out


def _md_hardware(d: dict, path: Path) -> list[str]:
    """lesa.bench.hardware: bf16 / fp32 ratios and the shared-prefix saving, one run."""
    m, f, t, p = d["matmul"], d["forward"], d["train_step"], d["shared_prefix"]
    rows = [[f"matmul {m['size']}²", f"{m['fp32_gflops']:.0f} GFLOP/s", f"{m['bf16_gflops']:.0f} GFLOP/s", m["bf16_speedup"]],
            [f"forward {f['batch']} x {f['seq']}", f"{f['fp32_s']:.3f} s", f"{f['bf16_s']:.3f} s", f["bf16_speedup"]],
            [f"train step {t['batch']} x {t['seq']} (loss {t['fp32_loss']:.4f} / {t['bf16_loss']:.4f})",
             f"{t['fp32_s']:.3f} s", f"{t['bf16_s']:.3f} s", t["bf16_speedup"]],
            [f"shared prefix, {p['models']} grown models ({p['shared_layers']} of {p['layers']} layers shared; "
             "speed-up over full forwards)", f"x{p['fp32']['saving']:.2f}", f"x{p['bf16']['saving']:.2f}", "-"]]
    host = HOST_WORDS.get(host_class(d.get("bf16_flags")) or "") if d["device"] == "cpu" else None
    out = [f"### bf16 and the shared prefix: {model_label(d['label'])} on {d.get('cpu_model') or d['device']}"
           f"{', ' + host if host else ''}", "", _prov(d, path), "",
           f"bf16 flags: {', '.join(d.get('bf16_flags') or []) or 'none'}; `precision: auto` here: {d.get('auto')}.", "",
           *_table(["measurement", "fp32", "bf16", "x"], rows)]
    pp = d.get("protocol_precision")
    if pp:          # notebook 3's screen in both precisions, beside the committed (fp32) book
        def pct(x: float | None) -> str:            # signed to 3 decimals; one that rounds to zero has no sign
            return "-" if x is None else f"{100 * x:+.3f} %" if round(100 * x, 3) else "0.000 %"
        runs = [(m, r) for m, r in pp.items() if isinstance(r, dict)]
        prow = [[label(m), f"{r['fp32']:.4g} ({r['fp32_s']:.0f} s)", f"{r['bf16']:.4g} ({r['bf16_s']:.0f} s)",
                 pct(r["bf16_relative"])] for m, r in runs]
        crow = [[label(m), f"{r['fp32']:.4g}", "-" if r.get("committed_fp32") is None else f"{r['committed_fp32']:.4g}",
                 pct(r.get("here_fp32_relative_to_committed"))] for m, r in runs]
        out += ["", f"Notebook 3's screen in both precisions (predictor seed {pp['seed']} for LESA): "
                f"{pp['protocol'].split('fp32, ', 1)[-1]} "
                "The committed book is fp32; a LESA growth is not the same weights on another machine (its predictor's "
                "training amplifies last-bit differences), so its committed value is another draw:", "",
                *_table(["model", "fp32 (time)", "bf16 (time)", "bf16 − fp32"], prow),
                "The same fp32 perplexities beside the committed book's:", "",
                *_table(["model", "here", "committed", "here − committed"], crow)]
    return out


def _md_prefix(d: dict, path: Path) -> list[str]:
    """lesa.bench_prefix: CPT without, writing and reading the frozen-prefix store, stepped in turn in one run."""
    # short run names in the tables (they must fit a phone); what each is in the sentence above them
    rows, what = [], {"full": "none", "first": "writes", "reuse": "reads"}
    for prec, r in d["by_precision"].items():
        for n, q in r["runs"].items():
            rows.append([f"{prec}, {what[n]}", f"{q['step_s_median']:.2f}", f"{q['steps_per_s']:.3f}",
                         "1" if n == "full" else f"x{q['step_speedup']:.2f}",
                         "1" if n == "full" else f"x{q['eval_speedup']:.2f}",
                         "-" if n == "full" else ("yes" if q["bitwise_equal"] else "NO")])
    r0 = next(iter(d["by_precision"].values()))
    return [f"### CPT's frozen-prefix store: {model_label(d['label'])} on {d.get('cpu_model') or d['device']}", "", _prov(d, path), "",
            f"{r0['method']} growth ({r0['layers']} layers, the lowest trained one {r0['prefix_layers']}: layers "
            f"0-{r0['prefix_layers'] - 1} and the embeddings frozen), batch {r0['batch']} x {r0['seq_len']}, "
            f"{r0['steps']} steps per run (the first a warm-up), the three runs stepped in turn, "
            f"{d.get('torch_threads')} thread(s). Runs: none, without the store (`prefix_reuse: off`); writes, the "
            "first run: computes and writes it; reads, a later run on the same tokens: reads it.", "",
            *_narrow(["precision, run", "s/step (median)", "steps/s", "step speed-up", "held-out eval speed-up",
                      "losses bitwise equal"], rows)]


def _lesa_before(d: dict) -> list[str]:
    """The replicate run's LESA perplexities before training beside the committed ones (its predictors are its own)."""
    b = d.get("lesa_before_training") or {}
    run, ref = b.get("run") or {}, b.get("reference") or {}
    rows = [[f"seed {s}", f"{ref[s]:.4g}", f"{run[s]:.4g}"] for s in sorted(set(run) & set(ref), key=int)]
    if not rows:
        return []
    return ["The run trains its own predictors (notebook 2), so LESA's grown models are its own draws; its perplexity "
            f"before training on {model_label(b['model'])} (notebook 3's WikiText screen) per predictor seed:", "",
            *_table(["predictor seed", "committed", "this run"], rows)]


def _verdict_line(d: dict) -> list[str]:
    """The run's verdicts against the committed book's, in a sentence (its own predictors, CPT runs, precision)."""
    v = d.get("verdicts")
    if not v:
        return []
    moved = "; ".join(f"{c['claim']}: {c['reference']} in the book, {c['run'] or 'absent'} in this run"
                      for c in v["changed"])
    return [f"Its scoreboard, from its own predictors and CPT runs in {(d.get('run_precision') or {}).get('protocol')}: "
            f"**{v['same']} of {v['of']} verdicts** as in the committed book" + (f" ({moved})." if moved else "."), ""]


def _md_replicate(d: dict, path: Path) -> list[str]:
    """lesa.bench.replicate: a `make replicate` run from an empty cache against the committed record."""
    x = lambda r: "-" if r is None else f"x{r:.2f}"                     # noqa: E731
    m = lambda v: "-" if v is None else f"{v / 60:.1f}"                # noqa: E731
    prec = d.get("run_precision") or {}
    run_p = prec.get("protocol", "fp32") if prec.get("protocol") == prec.get("cpt") else \
        f"{prec.get('protocol')} evaluation, {prec.get('cpt')} training"
    ref_p, run_prov = d.get("reference_precision"), d.get("run_provenance") or {}
    stages = [[k, m(v["reference_s"]), m(v["run_s"]), x(v["speedup"])] for k, v in d["stages"].items()]
    total_ref = sum(v["reference_s"] or 0 for v in d["stages"].values())
    total_run = sum(v["run_s"] or 0 for v in d["stages"].values())
    stages.append(["total", m(total_ref), m(total_run), x(total_ref / total_run if total_run else None)])
    words = lambda n: f"{int(n[:2])} " + n[3:].replace("_", " ").replace("svd", "SVD").replace("cpt", "CPT")  # noqa: E731
    nbs = [[words(n), m(v["reference_s"]), m(v["run_s"]), x(v["speedup"])] for n, v in sorted(d["notebooks"].items())]
    train = [[v.get("title", n), m(v["reference_train_s"]), m(v["run_train_s"]), x(v["train_speedup"])]
             for n, v in d["cpt"].items()]
    evals = [[v.get("title", n), m(v["reference_eval_s"]), m(v["run_eval_s"]), x(v["eval_speedup"])]
             for n, v in d["cpt"].items()]
    est = d.get("estimates_s") or {}
    known = [v for v in est.values() if v is not None]
    host = HOST_WORDS.get(host_class(d.get("bf16_units")) or "")
    return [f"### `make replicate` from an empty cache: {profile_label(d['profile'])}{', on ' + host if host else ''}", "",
            f"Run {d.get('run_time_utc')} at commit {commit_label(run_prov.get('commit'))} on {d.get('cpu_model')} "
            f"({d.get('cpus')} cores), in {run_p}; matmul probe {d['probe']['fp32_gflops']:.0f} "
            f"GFLOP/s fp32, {d['probe']['bf16_gflops']:.0f} bf16. Reference: the committed record of the same profile "
            f"in {ref_p}, measured on {' / '.join(d.get('reference_cpus') or []) or 'a machine whose CPU it does not record'}"
            ", so these ratios mix the precision, the machine and the code between the two (the bf16 table's ratios "
            "above, measured in one run, separate precision from the rest). Source: "
            f"`results/bench/{path.name}`.", "",
            f"Stages in minutes (the estimate printed before the run: {m(sum(known)) if known else '-'} min"
            f"{'' if len(known) == len(est) else ', some stages unknown'}"
            f"{'; ' + d['estimate_note'] if d.get('estimate_note') else ''}):", "",
            *_table(["stage", f"committed ({ref_p})", f"this run ({run_p})", "x"], stages),
            "Notebooks, minutes from an empty cache:", "",
            *_table(["notebook", "committed", "this run", "x"], nbs),
            "Continual pre-training (CPT) runs, minutes of training:", "",
            *_table(["run", "committed", "this run", "x"], train),
            "The same runs, minutes of their evaluation after training:", "",
            *_table(["run", "committed", "this run", "x"], evals),
            *_lesa_before(d), *_verdict_line(d),
            f"The committed column {d.get('reference_note')}."
            + (f" Before its stages the run spent {m(d['prelude_s'])} min on setup, converting the models and preparing "
               "the data (not in the committed record" + (f"; {d['prelude_note']}" if d.get("prelude_note") else "")
               + ")." if d.get("prelude_s") else ""), ""]


def bench_markdown(results: str | Path | None = None) -> str:
    """Markdown tables of every results/bench/*.json (expansion, training, eval), with provenance."""
    files = sorted(Path(results or Results("bench").dir).glob("*.json"))
    render = {"expansion": _md_expansion, "expansion_e2e": _md_e2e, "training": _md_training,
              "precision": _md_precision_file, "eval": _md_eval, "hardware": _md_hardware,
              "prefix": _md_prefix, "replicate": _md_replicate}
    lines, devices = ["Generated by `lesa.bench.run.bench_markdown()` from `results/bench/*.json` (`make bench`).", ""], {}
    for kind in render:
        for p in files:
            d = read_json(p)
            if (d.get("kind") or p.name.split("_")[0]) == kind:
                lines += render[kind](d, p)
                devices.setdefault(kind, set()).add(str(d.get("device", "cpu")).split(":")[0])
    if not files:
        lines += ["*No benchmark results yet: run `make bench`.*", ""]
    missing = [what for kind, what in (("expansion", "the 8B-shaped expansion on one GPU"),
                                       ("training", "training tokens/s and MFU on a GPU"))
               if "cuda" not in devices.get(kind, set())]
    if missing:
        lines += ["```{note}", "Not measured yet: " + " and ".join(missing) + ". Both need a GPU; every number "
                  "above was measured on a CPU.", "```", ""]
    return "\n".join(lines)
