"""Chapter 3's tables and verdicts, from the grown models' measurements (pure post-processing: no model, no cache).

    ch = Expansion.from_run(out, proto, seeds, variants)      # out: lesa.study.expansion.run_expansion's result
    ch = Expansion.load("results/cpu/03_expansion/expansion.json", variants)   # the same, from the saved file
    ch.verdicts(whole_protocol(...))                           # C3, C9, C12c
    ch.ppl_table(), ch.variant_table(), ch.by_model_table()    # what the chapter shows

The notebook draws these and writes the prose; the costly part (growing and measuring) stays in
lesa.study.expansion, whose caches this module never touches.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..claims import rules as C
from ..claims.verdict import Verdict, across_models
from ..core.models import model_label, profile_label
from ..core.store import read_json
from ..eval.protocol import PplProtocol, headline
from ..grow.expand import apply_plan
from ..grow.methods import METHODS, label, variant_label
from ..grow.plans import build_plan
from ..grow.predictor import PredictorConfig
from .expansion import FULL
from .expansion import spec as expansion_spec
from .profiles import build_tiny, longer_profiles
from .results import find_results

Res = dict[str, dict[Any, dict]]         # grown model's name -> predictor seed (None: seedless) -> its record


def ppl(rec: dict, where: str, s: str | None) -> float | None:
    """The perplexity of set `s` in rec[where] ("ppl": the whole protocol, "screen": the screening one), or None."""
    r = rec.get(where, {}).get(s)
    return r["value"] if r and r.get("status") == "ok" else None


def values(res: Res, name: str, where: str, s: str | None) -> list[float]:
    """Every measured perplexity of one grown model over its predictor seeds (one value when seedless)."""
    return [v for r in res.get(name, {}).values() if (v := ppl(r, where, s)) is not None]


def seed_cell(s: Any) -> Any:
    """A seed as a table shows it: a method that depends on no predictor seed has "–"."""
    return "–" if s is None else s


def norm_of(rec: dict) -> float:
    """The mean, over a grown model's new weights, of their norm over their neighbours' mean norm."""
    return float(np.mean([x["norm_ratio"] for x in rec["layer_stats"]]))


def protocol_of(d: dict) -> PplProtocol:
    """A PplProtocol from its saved key (PplProtocol.key())."""
    return PplProtocol(**{**d, "sets": tuple(d["sets"]), "limits": dict(d["limits"])})


def _seed_of(s: str) -> int | None:
    return None if s == "None" else int(s)


@dataclasses.dataclass
class Expansion:
    """The grown models of chapter 3 and what was measured on them, on the profile's model and its extra models."""
    by_model: dict[str, dict]            # model name -> {"res": Res, "screen": PplProtocol}, the profile's model first
    proto: PplProtocol                   # the whole protocol (the profile's model, C3's models)
    seeds: list[int]
    variants: dict[str, dict]            # the profile's learned variants: name -> {"method", plan options}
    plans: dict = dataclasses.field(default_factory=dict)
    norm_study: dict = dataclasses.field(default_factory=dict)
    model_key: str = ""

    # ------------------------------------------------------------------ building it
    @classmethod
    def from_run(cls, out: dict, proto: PplProtocol, seeds: list[int], variants: dict) -> "Expansion":
        return cls({m: dict(d) for m, d in out["by_model"].items()}, proto, list(seeds),
                   {n: dict(v) for n, v in variants.items()}, out["plans"], out["norm_study"], out["model_key"])

    @classmethod
    def load(cls, path: str | Path, variants: dict) -> "Expansion":
        """The chapter as saved by to_json (seeds come back as integers, a seedless method's as None)."""
        d = read_json(path)
        by_model = {m: {"screen": protocol_of(x["screen"]),
                        "res": {n: {_seed_of(s): r for s, r in rs.items()} for n, rs in x["results"].items()}}
                    for m, x in d["models"].items()}
        return cls(by_model, protocol_of(d["protocol"]), list(d["seeds"]), {n: dict(v) for n, v in variants.items()},
                   d["plans"], d["norm_study"], d["model_key"])

    def to_json(self) -> dict:
        """What the chapter saves (expansion.json): every record, seeds as strings."""
        return {"model_key": self.model_key, "seeds": self.seeds, "protocol": self.proto.key(), "plans": self.plans,
                "norm_study": self.norm_study,
                "models": {m: {"screen": d["screen"].key(),
                               "results": {n: {str(s): r for s, r in x.items()} for n, x in d["res"].items()}}
                           for m, d in self.by_model.items()}}

    # ------------------------------------------------------------------ the profile's model
    @property
    def models(self) -> list[str]:
        return list(self.by_model)

    @property
    def res(self) -> Res:
        return self.by_model[self.models[0]]["res"]

    @property
    def screen(self) -> PplProtocol:
        return self.by_model[self.models[0]]["screen"]

    @property
    def hl(self) -> str | None:
        """The whole protocol's headline set (C3 is judged on it)."""
        return headline(self.proto.sets)

    @property
    def sh(self) -> str | None:
        """The screening protocol's headline set (the controls, the λ ablation and the variants)."""
        return headline(self.screen.sets)

    def name_of(self, name: str) -> str:
        """The one name a reader sees for a grown model (lesa.grow.methods' display names)."""
        method, opts, _ = expansion_spec(name, self.variants)
        return label(name) if name in METHODS else variant_label(method, opts)

    def first(self, name: str) -> dict:
        """The record of a grown model's first predictor seed (its only one when seedless)."""
        return self.res[name][min(self.res[name], key=lambda s: -1 if s is None else s)]

    def screen_values(self, name: str, model: str | None = None) -> list[float]:
        d = self.by_model[model or self.models[0]]
        return values(d["res"], name, "screen", headline(d["screen"].sets))

    def best_variant(self) -> str | None:
        """The learned variant beyond the paper with the lowest median screening perplexity."""
        return min((n for n in self.variants if self.screen_values(n)),
                   key=lambda n: float(np.median(self.screen_values(n))), default=None)

    # ------------------------------------------------------------------ verdicts
    def c3_numbers(self, whole: dict | None) -> tuple[dict, str]:
        """(method -> perplexities, what they are) that C3 and C9 judge on the profile's model: a longer profile's
        whole protocol when it has run (whole_protocol), else this profile's."""
        if whole:
            return whole["vals"], (f"{whole['set']} perplexity ({whole['proto'].size_text(whole['set'])}, "
                                   f"{profile_label(whole['profile'])}'s protocol)")
        return {n: values(self.res, n, "ppl", self.hl) for n in FULL}, f"{self.hl} perplexity"

    def c3_by_model(self, whole: dict | None) -> dict[str, Verdict]:
        """C3 on each model: the profile's model on c3_numbers, the others on their own screening protocol."""
        out = {}
        for m, d in self.by_model.items():
            if m == self.models[0]:
                out[m] = C.judge_c3(*self.c3_numbers(whole))
            else:
                s = headline(d["screen"].sets)
                out[m] = C.judge_c3({n: values(d["res"], n, "screen", s) for n in FULL},
                                    f"{s} perplexity ({d['screen'].size_text(s)})")
        return out

    def verdicts(self, whole: dict | None, lam_code: float | None = None) -> list[Verdict]:
        """C3 (across models), C9 (LESA against SOLAR over the families) and C12c (the norm term, per model)."""
        hl, proto = self.hl, self.proto
        budget = {"seeds": self.seeds, "set": f"{hl} ({proto.size_text(hl)}, {proto.max_length}-token windows)" if hl
                  else "none"}
        lam_code = PredictorConfig().lam if lam_code is None else lam_code
        main, main_label = self.c3_numbers(whole)
        # C9 reads the same numbers as C3: the first model under the whole protocol (a longer profile's when it has run)
        c9_init = {model_label(m): {n: (main[n] if m == self.models[0] else self.screen_values(n, m))
                                    for n in ("lesa", "solar")} for m in self.by_model}

        def c12c(d: dict) -> Verdict:
            s = headline(d["screen"].sets)
            return C.judge_c12c(
                {0.0: [norm_of(r) for r in d["res"].get("lesa-lambda0", {}).values()],
                 lam_code: [norm_of(r) for r in d["res"].get("lesa", {}).values()]},
                {0.0: values(d["res"], "lesa-lambda0", "screen", s), lam_code: values(d["res"], "lesa", "screen", s)},
                f"{s} perplexity (screen: {d['screen'].size_text(s)})",
                base_ppl=ppl(d["res"]["base"][None], "screen", s), budget=budget, lam_code=lam_code)

        return [across_models({model_label(m): v for m, v in self.c3_by_model(whole).items()}),
                C.judge_c9(c9_init, f"{main_label} on the first model, the screening protocol's on the others",
                           budget={**budget, "set": f"{main_label} on the first model; the screening protocol's on the "
                                                    "others"}),
                across_models({model_label(m): c12c(d) for m, d in self.by_model.items()})]

    # ------------------------------------------------------------------ tables and figure data
    def ok_sets(self) -> list[str]:
        """The whole protocol's sets measured on at least one model."""
        return [k for k in self.proto.sets if any(ppl(r, "ppl", k) is not None for d in self.res.values()
                                                   for r in d.values())]

    def ppl_rows(self) -> list[dict]:
        """One row per grown model, seed and set of the whole protocol (C3's figure)."""
        return [{"method": self.name_of(n), "seed": seed_cell(s), "set": k, "value": ppl(r, "ppl", k)}
                for n, d in self.res.items() for s, r in d.items() if "ppl" in r for k in self.proto.sets
                if ppl(r, "ppl", k) is not None]

    def base_ppl(self) -> dict[str, float | None]:
        return {k: ppl(self.res["base"][None], "ppl", k) for k in self.ok_sets()}

    def ppl_table(self) -> tuple[pd.DataFrame, list[str]]:
        """(one row per grown model and seed: whole-protocol and screening perplexities, their columns)."""
        sets, sh = self.ok_sets(), self.sh
        cols = [f"{k} (protocol)" for k in sets] + [f"{sh} (screen)"]
        df = pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(s), "identity of the base": r.get("identity", False),
                            **{f"{k} (protocol)": ppl(r, "ppl", k) for k in sets}, f"{sh} (screen)": ppl(r, "screen", sh)}
                           for n, d in self.res.items() for s, r in d.items()])
        return df, cols

    def missing_sets(self) -> list[str]:
        """Sets of the whole protocol that could not be measured (data not prepared)."""
        return sorted({k for d in self.res.values() for r in d.values() for k, v in r.get("ppl", {}).items()
                       if v["status"] != "ok"})

    def bench_table(self) -> pd.DataFrame:
        """Accuracy of the quick benchmark pass before training, one row per grown model, seed and task."""
        return pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(s), "task": t, "acc": v["value"],
                              "stderr": v.get("stderr"), "n": v.get("n")}
                             for n, d in self.res.items() for s, r in d.items() for t, v in r.get("bench", {}).items()
                             if v.get("status") == "ok"])

    def layer_stats(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(every new weight's norm ratio and cosines with its neighbours, their means per model, type and seed)."""
        ls = pd.DataFrame([dict(method=self.name_of(n), seed=seed_cell(s), **row) for n, d in self.res.items()
                           for s, r in d.items() for row in r.get("layer_stats", [])])
        per_seed = (ls.groupby(["method", "type", "seed"], sort=False)[["norm_ratio", "cos_src0", "cos_src1"]].mean()
                    .reset_index().rename(columns={"cos_src0": "cos lower", "cos_src1": "cos upper",
                                                   "norm_ratio": "norm ratio"}))
        return ls, per_seed

    def residual_table(self) -> pd.DataFrame:
        """Mean relative update of the residual stream by the new layers and by the original ones, per model and seed."""
        def upd(n, r, new):
            nl = set(self.plans[n]["new_layers"]) if n in self.plans else set()
            v = [x["rel_update"] for x in r["residual"] if (x["layer"] in nl) == new]
            return float(np.mean(v)) if v else None

        return pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(s), "new layers: mean rel. update": upd(n, r, True),
                              "original layers": upd(n, r, False)}
                             for n, d in self.res.items() for s, r in d.items() if "residual" in r])

    def residuals(self) -> tuple[dict, dict]:
        """(grown model -> its first seed's residual-stream updates, grown model -> its new layers) for the figure."""
        return ({n: self.first(n)["residual"] for n in self.res if "residual" in self.first(n)},
                {n: p["new_layers"] for n, p in self.plans.items()})

    def norm_gains_table(self) -> pd.DataFrame:
        """RMSNorm gains of layer 0 against those of the layers around LESA's gaps."""
        return pd.DataFrame([{"norm": k, "layer 0 mean |gain|": v["layer0"]["mean_abs"],
                              "gap neighbours mean |gain| (median over gaps)": float(np.median([x["mean_abs"] for x in v["gaps"]])),
                              "neighbours / layer 0 (min)": v["gap_over_layer0_mean_abs"]["min"],
                              "neighbours / layer 0 (max)": v["gap_over_layer0_mean_abs"]["max"]}
                             for k, v in self.norm_study["gains"].items() if v["gap_over_layer0_mean_abs"]])

    def neighbour_norms_ppl(self) -> float | None:
        """LESA's first seed grown with its neighbours' norms instead of layer 0's: screening perplexity."""
        return (self.norm_study["neighbours_screen"].get(self.sh) or {}).get("value")

    def norm_ablation_rows(self) -> list[dict]:
        """LESA with and without the norm term: new-layer norm ratio and screening perplexity per seed (C12c's figure)."""
        sh = self.sh
        return [{"method": n, "seed": seed_cell(s), "panel": panel, "value": v}
                for n in ("lesa", "lesa-lambda0") if n in self.res for s, r in self.res[n].items()
                for panel, v in (("new-layer norm / neighbours'", norm_of(r)), (f"{sh} perplexity (screen)",
                                                                                ppl(r, "screen", sh)))]

    def variant_table(self) -> pd.DataFrame:
        """The learned variants beyond the paper beside the base model, LLaMA Pro and LESA: screening perplexity,
        seconds to grow and to evaluate, per seed."""
        sh = self.sh
        return pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(s), "identity of the base": r.get("identity", False),
                              f"{sh} (screen)": ppl(r, "screen", sh), "grow s": r.get("grow_s"), "eval s": r.get("eval_s")}
                             for n in ["base", "llama_pro", "lesa", *self.variants] if n in self.res
                             for s, r in self.res[n].items()])

    def by_model_table(self) -> pd.DataFrame:
        """Every model of the profile, each under its own screening protocol: perplexity per grown model and seed."""
        rows = []
        for m, d in self.by_model.items():
            s_ = headline(d["screen"].sets)
            for n, x in d["res"].items():
                for s, r in x.items():
                    rows.append({"model": model_label(m), "method": self.name_of(n), "seed": seed_cell(s),
                                 "identity of the base": r.get("identity", False),
                                 "set": f"{s_} ({d['screen'].size_text(s_)})", "perplexity": ppl(r, "screen", s_)})
        return pd.DataFrame(rows)

    def timings_table(self) -> pd.DataFrame:
        """Seconds spent growing (or reading the growth cache) and evaluating each model, per model and seed."""
        return pd.DataFrame([{"model": model_label(m), "method": self.name_of(n), "seed": seed_cell(s),
                              "cache": r.get("cache", "–"), "grow s": r.get("grow_s"), "eval s": r.get("eval_s")}
                             for m, d in self.by_model.items() for n, x in d["res"].items() for s, r in x.items()])

    def whole_table(self, whole: dict) -> pd.DataFrame:
        """C3's models under a longer profile's whole protocol, one row per model, seed and set."""
        return pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(_seed_of(s)), "set": k,
                              "perplexity": r["ppl"][k]["value"]}
                             for n in FULL for s, r in whole["results"].get(n, {}).items()
                             for k in whole["proto"].sets if (r.get("ppl") or {}).get(k, {}).get("status") == "ok"])

    def judged_table(self, whole: dict | None) -> pd.DataFrame:
        """The numbers C3 and C9 are judged on: a longer profile's whole protocol (whole_table) when it has run,
        else this profile's own whole protocol, one row per model, seed and set."""
        if whole:
            return self.whole_table(whole)
        return pd.DataFrame([{"method": self.name_of(n), "seed": seed_cell(s), "set": k, "perplexity": ppl(r, "ppl", k)}
                             for n in FULL for s, r in self.res.get(n, {}).items() for k in self.proto.sets
                             if ppl(r, "ppl", k) is not None], columns=["method", "seed", "set", "perplexity"])


def whole_protocol(profile: str, model_key: str, model: str, preferred: list[str] | tuple[str, ...],
                   results_root: str | Path = "results") -> dict | None:
    """C3's models under the whole protocol of a longer profile (cpu-long of cpu: the same code and source
    model, a larger perplexity protocol), once that profile's chapter 3 has run; else None.

    {"profile", "proto", "set" (its headline set), "vals" (method -> perplexities over seeds), "results" (the
    saved records, seeds as strings), "n" (models measured), "minutes" (their evaluation wall-clock)}."""
    wdir, wsource = find_results(profile, "03_expansion", (), results_root, prefer=longer_profiles(preferred, profile))
    if not wsource or wsource == profile or not (wdir / "expansion.json").exists():
        return None
    wexp = read_json(wdir / "expansion.json")
    if wexp.get("model_key") != model_key:       # another source model: not the same experiment
        return None
    wproto = protocol_of(wexp["protocol"])
    wh = headline(wproto.sets)
    wres = wexp["models"][model]["results"]
    spent = [r.get("eval_s") or 0 for n in FULL for r in wres.get(n, {}).values()]
    return {"profile": wsource, "proto": wproto, "set": wh, "minutes": sum(spent) / 60, "n": len(spent), "results": wres,
            "vals": {n: [r["ppl"][wh]["value"] for r in wres.get(n, {}).values()
                         if (r.get("ppl") or {}).get(wh, {}).get("status") == "ok"] for n in FULL}}


def family_demo(prof: dict, families: list[str], seed: int) -> list[dict]:
    """Tiny random models of other families (Qwen2, Mistral): each of LESA, LLaMA Pro and SOLAR grows them, the
    logits stay finite, and LLaMA Pro stays an identity of its source on their layouts (seconds; not cached)."""
    rows = []
    for family in families:
        m0 = build_tiny(prof, family, vocab_size=256, seed=seed)
        x = torch.randint(0, 256, (1, 16))
        for method in ("lesa", "llama_pro", "solar"):
            g = apply_plan(m0, build_plan(method, m0.config.num_hidden_layers), PredictorConfig(epochs=1, seed=seed),
                           progress=False)
            with torch.no_grad():
                same = torch.allclose(m0(x).logits, g(x).logits, atol=1e-4)
                finite = bool(torch.isfinite(g(x).logits).all())
            rows.append({"family": family, "method": label(method),
                         "layers": f"{m0.config.num_hidden_layers} -> {g.config.num_hidden_layers}",
                         "finite logits": finite, "identical to source": same})
    return rows
