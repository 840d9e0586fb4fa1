"""The landing page as an abstract, generated from results (book/generated/abstract.md): what was tested and at
what scale, the finding in three sentences with their numbers, how far to trust it, what to use on your own
model by size, and the claims as an HTML table (claim | verdict | reading | one-line evidence | link) that
stacks on a phone. Every number is read from the verdict records, the CPT summaries and the scale ladder;
a sentence whose numbers are missing says so instead of guessing.

Links to the evidence go to the figure that decides a claim (its MyST name in the chapter notebook's cell
metadata, e.g. `fig-loss-vs-compute`), found by `figure_anchors` from the notebooks themselves.
"""
from __future__ import annotations

import html as H

from ..claims.verdict import verdict_of
from ..core.layout import Results
from ..core.store import read_json
from .display import name, spread_format, uniform
from .links import evidence_link, figure_anchors
from .links import record_dict as _dict
from ..claims.paper import PAPER_MAIN, fmt
from ..core.models import model_label
from .pages import _counts_sentence, _slug, reading_of, verdict_counts

def one_line(row: dict, limit: int = 160) -> str:
    """The first clause of a verdict's `ours` (per model: the first model's), in the book's one format,
    cut at a word boundary."""
    s = uniform(str(row.get("ours") or "–"))
    depth, cut = 0, len(s)
    for i, ch in enumerate(s):              # the first "; " or " | " outside parentheses ends the clause
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and (s.startswith("; ", i) or s.startswith(" | ", i)):
            cut = i
            break
    s = s[:cut]
    return s if len(s) <= limit else s[:limit].rsplit(" ", 1)[0] + " …"


def claims_table_html(rows: list[dict], anchors: dict[str, dict[str, str]] | None = None, number: int = 2) -> str:
    """The claims as an HTML table, one row per claim: claim | verdict | reading | one-line evidence | link.
    Each cell carries its column name (data-label) so that book/_static/lesa.css stacks a row into a card on a
    narrow screen."""
    anchors = figure_anchors() if anchors is None else anchors
    head = ("claim", "verdict", "reading", "evidence (one line)", "decided in")
    trs = []
    for r in rows:
        v, href_text = verdict_of(r), evidence_link(r, anchors)
        href, text = href_text
        cells = [f"<strong>{H.escape(r['claim'])}</strong> {H.escape(str(r.get('statement', '')))}",
                 f'<span class="verdict verdict-{_slug(v)}">{H.escape(v)}</span>',
                 H.escape(reading_of(r)), H.escape(one_line(r)),
                 f'<a href="{H.escape(href)}">{H.escape(text)}</a>' if href else "–"]
        trs.append(f'<tr id="summary-{_slug(r["claim"])}">' + "".join(
            f'<td data-label="{h}">{c}</td>' for h, c in zip(head, cells)) + "</tr>")
    return ('<div class="lesa-table-wrap"><table class="lesa-table lesa-stack claims-summary">'
            f'<caption>Table {number}. Every claim of the paper, its verdict here and the figure that decides it.</caption>'
            "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(trs) + "</tbody></table></div>")


# ------------------------------------------------------------------------------------------ the numbers
def _by_claim(rows: list[dict]) -> dict[str, dict]:
    return {r["claim"]: r for r in rows}


def _spread(s: dict | None, unit: str = "seeds", nd: int = 3) -> str:
    if not s:
        return "n/a"
    if s.get("n", 1) == 1:
        return fmt(s["median"], nd)
    return spread_format(fmt(s["median"], nd), fmt(s["min"], nd), fmt(s["max"], nd), s["n"], unit)


def _cpt_runs(profile: str) -> list[dict]:
    return [read_json(f) for f in sorted(Results(profile).cpt().glob("*/summary.json"))]


def _method_of(s: dict) -> str:
    return (s.get("growth") or {}).get("method") or "base"


def _lesa_runs(profile: str) -> list[dict]:
    """LESA's CPT runs on its own recipe (new layers only; the unfrozen ablation is another recipe)."""
    return [s for s in _cpt_runs(profile) if _method_of(s) == "lesa" and not (s.get("trainable") or {}).get("train_all")]


def finding_sentences(rows: list[dict], profile: str) -> list[str]:
    """The finding in three plain sentences (predictor, initialisation, after training), each from its
    claim's record; a claim without numbers gives a sentence that says so."""
    by = _by_claim(rows)
    first = lambda d: next(iter(d.items())) if d else (None, {})      # noqa: E731  (the first model judged)
    out = []
    model, u7 = first(_dict((by.get("C7b") or {}).get("uncertainty")))
    if u7.get("predictor") and u7.get("baselines"):
        pred, base = u7["predictor"], u7["baselines"]
        best = max(base, key=lambda k: base[k]["median"])
        verb = ("learns less than a trivial predictor" if pred["max"] < base[best]["min"] else
                "learns more than every trivial predictor" if pred["min"] > base[best]["max"] else
                "cannot be told apart from a trivial predictor")
        out.append(f"**At this scale LESA's predictor {verb}**: on a left-out layer of {model} its prediction has a "
                   f"held-out R² of {uniform(_spread(pred))}, against {uniform(fmt(base[best]['median']))} for the best "
                   f"trivial predictor ({name(best)}); an R² below 0 is worse than predicting zeros (C7b).")
    else:
        out.append("The predictor's held-out test (C7b) has no numbers in this build.")
    model, u3 = first(_dict((by.get("C3") or {}).get("uncertainty")))
    if u3.get("lesa") and u3.get("base"):
        ratio = u3["lesa"]["median"] / u3["base"]["median"]
        out.append(f"**Its new layers start far from the base model**: before training they take {model}'s WikiText "
                   f"perplexity from {fmt(u3['base']['median'])} to {uniform(_spread(u3['lesa']))}, {fmt(ratio, 2)} times "
                   f"the base, where LLaMA Pro's identity layers keep {fmt(u3['llama_pro']['median'])} and SOLAR's "
                   f"copies give {fmt(u3['solar']['median'])} (C3).")
    else:
        out.append("The perplexity before training (C3) has no numbers in this build.")
    c4 = by.get("C4") or {}
    u4 = _dict(c4.get("uncertainty"))
    h, rule = u4.get("heldout") or {}, (u4.get("seed_rule") or {}).get("llama_pro") or {}
    if h.get("lesa_end") is not None and h.get("llama_pro_end"):
        src = c4.get("source_profile") or profile
        lesa_n = len(_lesa_runs(src))
        tokens = next((s.get("tokens") for s in _cpt_runs(src) if _method_of(s) == "lesa"), None)
        lead = {"higher": "it still trails LLaMA Pro", "lower": "it leads LLaMA Pro"}.get(
            rule.get("result"), "it cannot be told apart from LLaMA Pro")
        every = (f"; every one of its {rule['n']} predictor seeds lies {'above' if rule['result'] == 'higher' else 'below'} "
                 f"all {rule['n_ref']} LLaMA Pro data orders at every evaluation in the later half"
                 if rule.get("result") in ("higher", "lower") else "")
        out.append(f"**After {fmt(tokens)} tokens of continual pre-training {lead}**: held-out loss "
                   f"{fmt(h['lesa_end'], 4)} for LESA's median seed (of {lesa_n} trained) against "
                   f"{uniform(_spread(h['llama_pro_end'], 'data orders', 4))} for LLaMA Pro{every} (C4, C5).")
    else:
        out.append("The comparison after continual pre-training (C4) has no held-out numbers in this build.")
    return out


def tested_sentence(rows: list[dict], profile: str, ladder: list[dict]) -> str:
    """What was tested and at what scale: the models, the growth, the training budget against the paper's."""
    models = list(dict.fromkeys(m for r in rows for m in (r.get("per_model") or {})))
    src = next((r.get("source_profile") for r in rows if r["claim"] == "C4"), profile) or profile
    runs = _cpt_runs(src)
    grown = next((s for s in runs if (s.get("growth") or {}).get("target_layers")), None)
    lesa = next((s for s in runs if _method_of(s) == "lesa"), None)
    shape = (f" ({grown['growth']['source_layers']} → {grown['growth']['target_layers']} layers)" if grown else "")
    ladder_models = [model_label(r["model"]) for r in ladder]
    train = (f"continually pre-trained for {fmt(lesa.get('steps'))} steps ({fmt(lesa.get('tokens'))} tokens) per run"
             if lesa else "not continually pre-trained in this build")
    return (f"**What was tested.** The paper's twelve claims (C1–C12; {len(rows)} rows with the split ones) on "
            f"{models[0] if models else 'a small model'}{shape}, {train}, with the claims that need no training also on "
            f"{', '.join(models[1:]) or 'no other model'}"
            + (f" and, before training, on the scale ladder's {', '.join(ladder_models)} (chapter 7)" if ladder_models else "")
            + ". The paper grows Llama-3-8B (32 → 48 layers) and trains it for "
            f"{fmt(6000)} steps.")


def caveat_lines(rows: list[dict], profile: str) -> list[str]:
    """How far to trust the finding: one line per caveat, each linked to the limitations page's paragraph."""
    src = next((r.get("source_profile") for r in rows if r["claim"] == "C4"), profile) or profile
    runs = _cpt_runs(src)
    lesa = _lesa_runs(src)
    lp = [s for s in runs if _method_of(s) == "llama_pro"]
    steps = lesa[0].get("steps") if lesa else None
    link = lambda label, text: f"{{ref}}`{text} <{label}>`"          # noqa: E731  (book/limitations.md's labels)
    return [
        "- **4-bit weights**: SmolLM2's only offline weights are 4-bit quantised (de-quantised to fp32): "
        + link("lim-source-weights", "source weights") + ".",
        "- **The paper's numbers** come from secondary summaries of it (the full text was not available offline): "
        + link("lim-paper-numbers", "the paper's own numbers") + ".",
        f"- **Seeds**: LESA was continually pre-trained on {len(lesa)} predictor seed{'s' if len(lesa) != 1 else ''}, "
        f"LLaMA Pro on {len(lp)} data order{'s' if len(lp) != 1 else ''}; the other methods once each: "
        + link("lim-budgets", "budgets") + ".",
        (f"- **Budget**: {fmt(steps)} training steps per run, {fmt(100 * steps / 6000, 2)} % of the paper's 6,000 "
         "(its tokens per step are not in the summaries available offline, so the share of its tokens is smaller "
         "still and unknown): " if steps else "- **Budget**: no training runs in this build: ")
        + link("lim-budgets", "budgets") + ".",
        "- **One LESA number is one draw**: the predictor amplifies last-bit differences, so LESA's spread over "
        "predictor seeds is also its spread across machines: " + link("lim-chaos", "a growth is not the same weights "
                                                                       "on another machine") + ".",
    ]


def recommendation_rows(rows: list[dict], ladder: list[dict]) -> list[tuple[str, str, str]]:
    """(model, evidence, what to use) per model size, from the evidence alone: the models judged before and
    after training here, the scale ladder's models before training, and the paper's scale, which is not tested."""
    by = _by_claim(rows)
    u3 = _dict((by.get("C3") or {}).get("uncertainty"))
    c4 = _dict((by.get("C4") or {}).get("uncertainty"))
    trails = ((c4.get("seed_rule") or {}).get("llama_pro") or {}).get("result")
    out = []

    def advice(lesa_rel: float | None, solar_rel: float | None, trained: bool) -> str:
        if lesa_rel is None:
            return "no evidence yet"
        if trained and trails == "higher":
            return "LLaMA Pro's identity blocks: LESA starts worse and still trails after training"
        if lesa_rel > 1.05:
            worse = "" if solar_rel is None else (" (better than SOLAR's copies)" if lesa_rel < solar_rel else
                                                  " (worse than SOLAR's copies too)")
            return (f"LLaMA Pro's identity blocks, which start at the base model; LESA starts {fmt(lesa_rel, 2)} times "
                    f"the base perplexity{worse}; not trained here, so whether LESA catches up is untested")
        return "LESA starts close to the base model; not trained here, so which trains better is untested"

    for model, u in u3.items():
        if not (u.get("lesa") and u.get("base")):
            continue
        rel = u["lesa"]["median"] / u["base"]["median"]
        srel = u["solar"]["median"] / u["base"]["median"] if u.get("solar") else None
        trained = model == next(iter(u3))                 # the first model is the one continually pre-trained
        ev = (f"before and after training: LESA {fmt(rel, 2)}× the base perplexity at the start"
              + ("; still behind LLaMA Pro after training" if trained and trails == "higher" else "")
              if trained else f"before training only: LESA {fmt(rel, 2)}×, SOLAR {fmt(srel, 2)}× the base perplexity")
        out.append((model, ev, advice(rel, srel, trained)))
    for r in ladder:
        name = model_label(r["model"])
        if name in u3:
            continue
        rel, srel = (r.get("init_lesa_rel") or {}).get("median"), (r.get("init_solar_rel") or {}).get("median")
        size = f"{name} ({fmt(r['parameters'] / 1e6, 3)}M)" if r.get("parameters") else name
        lr = r.get("init_lesa_rel") or {}
        ev = (f"before training only: LESA {fmt(rel, 2)}× the base perplexity"
              + (f" ({fmt(lr['min'], 2)}–{fmt(lr['max'], 2)}×, {lr['n']} seeds)" if lr.get("n", 1) > 1 else "")
              + (f", SOLAR {fmt(srel, 2)}×" if srel else "") if rel is not None else
              "the scale ladder has not measured its growth before training yet (chapter 7)")
        out.append((size, ev, advice(rel, srel, False)))
    p = PAPER_MAIN
    out.append(("Llama-3-8B and larger (the paper's)",
                f"not tested here; the paper reports WikiText perplexity {p['LESA-6k']['ppl']} for LESA against "
                f"{p['LLaMA Pro-6k']['ppl']} for LLaMA Pro after 6,000 steps (secondary summaries)",
                "no evidence of ours: the paper's result is the only one at this size"))
    return out


def _ladder(profile: str) -> list[dict]:
    """The scale ladder's rows as chapter 7 reads them (never measured here for real models)."""
    try:
        from ..core.ledger import load_results
        from ..study.profiles import load_profile
        from ..study.scale import ladder, scale_profile_of, settings

        prof = load_profile(scale_profile_of(profile), check_device=False)
        S = settings(prof)
        return [r for r in ladder(load_results(prof["name"]), S) if not r.get("quantisation_control")]
    except (FileNotFoundError, KeyError):
        return []


def abstract_markdown(profile: str, rows: list[dict]) -> str:
    """The landing page's abstract (book/generated/abstract.md)."""
    ladder = _ladder(profile)
    recs = recommendation_rows(rows, ladder)
    rec_table = ('<div class="lesa-table-wrap"><table class="lesa-table lesa-stack recommendation">'
                 "<caption>Table 1. What to use when growing a model deeper, by size, from the evidence.</caption>"
                 "<thead><tr><th>model</th><th>evidence</th><th>use</th></tr></thead><tbody>"
                 + "".join(f'<tr><td data-label="model">{H.escape(m)}</td><td data-label="evidence">{H.escape(e)}</td>'
                           f'<td data-label="use">{H.escape(a)}</td></tr>' for m, e, a in recs)
                 + "</tbody></table></div>")
    lines = []
    if profile == "smoke":
        lines += ["```{warning}", "Profile `smoke` uses a tiny **random** model: these numbers only show that every "
                  "code path runs and say nothing about LESA.", "```", ""]
    lines += ["(what-we-found)=", "## What we found", "",
              *[f"{i}. {x}" for i, x in enumerate(finding_sentences(rows, profile), 1)], "",
              tested_sentence(rows, profile, ladder), "",
              "(how-far-to-trust-it)=", "## How far to trust it", "", *caveat_lines(rows, profile), "",
              "(what-to-use)=", "## What to use on your own model", "",
              "Table 1 reads the evidence by model size; where it says *no evidence*, none of ours exists.", "",
              rec_table, "",
              "(every-claim)=", "## Every claim", "",
              f"{len(rows)} rows: {_counts_sentence(verdict_counts(rows))}. Table 2 gives each verdict, what it supports "
              "(its reading) and a link to the figure or section that decides it; the {doc}`scoreboard <scoreboard>` "
              "has the paper's values, ours, the budgets and the uncertainty.", "",
              claims_table_html(rows, figure_anchors(profile=profile)), ""]
    return "\n".join(lines) + "\n"
