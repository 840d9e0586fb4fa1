"""Chapter 2 (the predictor G_W, claims C7a, C7b, C8): the predictor study on each of the profile's models, the
verdicts, and the chapter's tables and figure data, from the studies and the synthetic model's records.

    ch = PredictorChapter.run(prof, seeds)             # trains (or reads the caches of) lesa.study.predictor
    ch = dataclasses.replace(ch, synth=synth)          # the synthetic model's records, computed by the notebook
    ch = PredictorChapter.load(study_json, synthetic_json, prof)    # the chapter as saved (predictor_study.json)
    ch.verdicts(), ch.loo_table(), ch.per_seed(), ch.full_table(), ch.lambda_table(), ch.checks_table()

The synthetic model's records (lesa.study.synthetic) come in as they are: the notebook computes them, since their
cache is keyed by its own call. The notebook draws these tables and writes the prose.
"""
from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import numpy as np
import pandas as pd

from ..claims import rules as C
from ..claims.verdict import Verdict, per_model
from ..core.models import model_label
from ..core.store import read_json
from ..grow.methods import label
from ..grow.predictor import PredictorConfig
from .predictor import LOO_CONTROLS, predictor_study
from .profiles import load_profile_model, profile_models

# the study's names for the predictor and the trivial predictors -> the method names the figures colour by
METHOD_NAMES = {"predictor": "lesa", "neighbour_average": "average", "ridge": "lesa_ridge", "zeros": "Zeros",
                "copy_below": "Copy of the layer below", "copy_above": "Copy of the layer above"}
# the synthetic model's checks (lesa.study.synthetic) as Table 4 names them; the others read from their key
CHECK_NAMES = {"loo_r2": "held-out R2 >= 0.9, every type", "new_layers_r2": "regrown layers R2 >= 0.9",
               "recovers_outputs": "outputs recover"}

Synth = dict[tuple[bool, int], dict]           # (shuffled, predictor seed) -> lesa.study.synthetic.run_synthetic's record


def model_budget(pred: dict, seeds: list[int], first: bool) -> dict:
    """The profile's predictor section for one model. The profile's model runs all of it; an extra model runs
    every seed, the full trainings and the lambda sweep, but only the first leave-one-out weight type and half
    the left-out layers (every left-out layer is one more training)."""
    if first:
        return dict(pred, seeds=seeds)
    return dict(pred, seeds=seeds, loo_weight_types=pred["loo_weight_types"][:1],
                loo_layers=max(2, pred["loo_layers"] // 2))


def loo_rows(study: dict) -> list[dict]:
    """One seed's left-out layers, over every weight type."""
    return [r for rows in study["loo"].values() for r in rows]


def loo_r2(study: dict, method: str = "predictor") -> float:
    """One seed's held-out R2 of ``method`` (the predictor or a trivial one), mean over its left-out layers."""
    return float(np.mean([r["metrics"][method]["r2"] for r in loo_rows(study)]))


def in_sample(study: dict, key: str, types: list[str]) -> float:
    """Mean over weight types of the predicted training layers' quality (R2: 0 = predicting zeros)."""
    return float(np.mean([study["full"][t]["in_sample"][key] for t in types]))


def synth_from_json(rows: list[dict]) -> Synth:
    """synthetic.json's rows back to {(shuffled, seed): record}."""
    return {(r["shuffled"], r["seed"]): {k: v for k, v in r.items() if k not in ("shuffled", "seed")} for r in rows}


@dataclasses.dataclass
class PredictorChapter:
    """The predictor study per model (the profile's model first) and the synthetic model's records."""
    studies: dict[str, dict[int, dict]]       # model label -> predictor seed -> predictor_study's record
    budgets: dict[str, dict]                   # model label -> model_budget
    keys: dict[str, str]                       # model label -> the model's cache key
    device: str
    synth: Synth = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ building it
    @classmethod
    def run(cls, prof: dict, seeds: list[int]) -> "PredictorChapter":
        """Run (or read from the caches) the predictor study on each of the profile's models, one at a time."""
        studies, budgets, keys = {}, {}, {}
        for i, section in enumerate(profile_models(prof)):
            b = model_budget(prof["predictor"], seeds, i == 0)
            model, _, key = load_profile_model(prof, tokenizer=False, model=section)
            m = model_label(section)
            studies[m] = {s: predictor_study(model, PredictorConfig(epochs=b["epochs"], seed=s, device=prof["device"]),
                                             b["weight_types"], b["loo_weight_types"], b["loo_layers"],
                                             b["lambda_weight_types"], b["lambdas"], key) for s in b["seeds"]}
            budgets[m], keys[m] = b, key
            del model
            gc.collect()
        return cls(studies, budgets, keys, prof["device"])

    @classmethod
    def load(cls, study_path: str | Path, synthetic_path: str | Path, prof: dict) -> "PredictorChapter":
        """The chapter as saved (to_json and the synthetic records), seeds back as integers."""
        d = read_json(study_path)["models"]
        studies = {m: {int(s): st for s, st in x["studies"].items()} for m, x in d.items()}
        budgets = {m: model_budget(prof["predictor"], x["seeds"], i == 0) for i, (m, x) in enumerate(d.items())}
        return cls(studies, budgets, {m: x["model_key"] for m, x in d.items()}, prof["device"],
                   synth_from_json(read_json(synthetic_path)))

    def to_json(self) -> dict:
        """What the chapter saves (predictor_study.json): each model's key, seeds and studies (seeds as strings)."""
        return {"models": {m: {"model_key": self.keys[m], "seeds": self.budgets[m]["seeds"],
                               "studies": {str(s): st for s, st in self.studies[m].items()}} for m in self.studies}}

    @property
    def main(self) -> str:
        """The profile's model (the figures show it)."""
        return next(iter(self.studies))

    @property
    def seeds(self) -> list[int]:
        """The synthetic model's predictor seeds in their order (every seed the chapter runs)."""
        return list(dict.fromkeys(s for _, s in self.synth))

    # ------------------------------------------------------------------ verdicts
    def judge(self, m: str) -> list[Verdict]:
        """C7a, C7b and C8 on one model, every seed."""
        st, b = self.studies[m], self.budgets[m]
        ss = list(st)
        in_r2 = [in_sample(st[s], "r2", b["weight_types"]) for s in ss]
        in_cos = [in_sample(st[s], "cosine", b["weight_types"]) for s in ss]
        first = loo_rows(st[ss[0]])
        trivial = [t for t in C.TRIVIAL if first and t in first[0]["metrics"]]
        budget = {"model": self.keys[m], "seeds": ss, "epochs": b["epochs"],
                  "left-out layers": f"{b['loo_layers']} of {', '.join(b['loo_weight_types'])}"}
        # C7a's controls (predictors that learn nothing, on the same left-out layers), where the study has them
        ctrl = lambda s, k: [r[k]["test_over_train"] for rows in st[s].get("loo_controls", {}).values() for r in rows]
        controls = ({k: [ctrl(s, k) for s in ss] for k in LOO_CONTROLS}
                    if all(st[s].get("loo_controls") for s in ss) else None)
        return [C.judge_c7a([[r["test_over_train"] for r in loo_rows(st[s])] for s in ss], in_r2, budget=budget,
                            controls=controls),
                C.judge_c7b([loo_r2(st[s]) for s in ss], {t: [loo_r2(st[s], t) for s in ss] for t in trivial}, in_r2,
                            budget=budget),
                C.judge_c8([sum(st[s]["full"][t]["seconds"] for t in b["weight_types"]) for s in ss], b["epochs"],
                           len(b["weight_types"]), self.device, in_r2, in_cos,
                           budget={"model": self.keys[m], "seeds": ss})]

    def verdicts(self) -> list[Verdict]:
        """C7a, C7b, C8, each judged on every model (lesa.claims.verdict.per_model)."""
        by_model = {m: self.judge(m) for m in self.studies}
        return [per_model({m: v[k] for m, v in by_model.items()}) for k in range(3)]

    # ------------------------------------------------------------------ the headline
    def held_out_r2(self, method: str = "predictor") -> dict[str, list[float]]:
        """model -> the held-out R2 of ``method`` per seed (mean over the left-out layers)."""
        return {m: [loo_r2(st, method) for st in self.studies[m].values()] for m in self.studies}

    def synthetic_passes(self) -> list[bool]:
        """Per seed: every check passes on the layered synthetic model."""
        return [all(self.synth[(False, s)]["checks"].values()) for s in self.seeds]

    def synthetic_r2_min(self) -> list[float]:
        """Per seed: the layered synthetic model's lowest held-out R2 over its weight types."""
        return [self.synth[(False, s)]["r2_min"] for s in self.seeds]

    def control_fails(self) -> list[bool]:
        """Per seed: some check fails on the shuffled-layer control."""
        return [not all(self.synth[(True, s)]["checks"].values()) for s in self.seeds]

    def pipeline_works(self) -> bool:
        """The positive control: the layered model passes and the shuffled control fails, every seed."""
        return all(self.synthetic_passes()) and all(self.control_fails())

    # ------------------------------------------------------------------ leave one layer out
    def loo_table(self) -> pd.DataFrame:
        """Every left-out layer's measures, per model, weight type, seed and predictor (loo.csv)."""
        return pd.DataFrame([{"model": m, "weight": t, "seed": s, "layer": r["layer"], "method": meth, **v,
                              "test/train MSE": r["test_over_train"]}
                             for m in self.studies for s, st in self.studies[m].items() for t, rows in st["loo"].items()
                             for r in rows for meth, v in r["metrics"].items()])

    def per_seed(self) -> pd.DataFrame:
        """loo_table's R2, cosine and norm ratio, mean over the left-out layers of each seed."""
        return (self.loo_table().groupby(["model", "weight", "method", "seed"], sort=False)
                [["r2", "cosine", "norm_ratio"]].mean().reset_index())

    def loo_points(self) -> list[dict]:
        """per_seed's rows on the profile's model, methods under the names the figures colour by."""
        rows = self.per_seed()
        rows = rows[rows["model"] == self.main].to_dict("records")
        for r in rows:
            r["method"] = METHOD_NAMES.get(r["method"], r["method"])
        return rows

    def loo_summary_input(self) -> pd.DataFrame:
        """per_seed with each method's display name (Table 2 summarises it over seeds)."""
        ps = self.per_seed()
        return ps.assign(method=[label(METHOD_NAMES.get(x, x)) for x in ps["method"]])

    # ------------------------------------------------------------------ full training and lambda
    def full_table(self) -> pd.DataFrame:
        """The released recipe on every layer: time, loss and in-sample fit per model, weight type and seed
        (full_training.csv)."""
        return pd.DataFrame([{"model": m, "weight": t, "seed": s, "samples": r["n_samples"], "seconds": r["seconds"],
                              "final loss": r["history"][-1], "loss / mean(y^2)": r["final_loss_over_mean_sq"],
                              "in-sample R2": r["in_sample"]["r2"], "in-sample cosine": r["in_sample"]["cosine"],
                              "in-sample norm ratio": r["in_sample"]["norm_ratio"],
                              "new-layer norm ratio": r["inference_norm_ratio"]}
                             for m in self.studies for s, st in self.studies[m].items() for t, r in st["full"].items()
                             if t in self.budgets[m]["weight_types"]])

    def lambda_table(self) -> pd.DataFrame:
        """The lambda sweep per model, weight type, seed and lambda (lambda.csv)."""
        return pd.DataFrame([{"model": m, "weight": t, "seed": s, "lambda": float(lv),
                              "loss / mean(y^2)": r["final_loss_over_mean_sq"],
                              "new-layer norm ratio": r["inference_norm_ratio"],
                              "in-sample norm ratio": r["in_sample"]["norm_ratio"],
                              "in-sample cosine": r["in_sample"]["cosine"]}
                             for m in self.studies for s, st in self.studies[m].items() for t, d in st["lambda"].items()
                             for lv, r in d.items()])

    def lambda_points(self) -> list[dict]:
        """lambda_table's rows on the profile's model, lambda as the figure's label ("0", "5e-05")."""
        lam = self.lambda_table()
        return [dict(r, **{"lambda": f"{r['lambda']:.0e}" if r["lambda"] else "0"})
                for r in lam[lam["model"] == self.main].to_dict("records")]

    # ------------------------------------------------------------------ the synthetic model
    def checks_table(self) -> pd.DataFrame:
        """Each synthetic case and seed: every check, pass or fail, and its time (synthetic_checks.csv)."""
        return pd.DataFrame([{"case": "shuffled layers (control)" if sh else "layered by depth", "seed": s,
                              **{CHECK_NAMES.get(k, k.replace("_", " ").replace("solar", "SOLAR")):
                                 "pass" if v else "fail" for k, v in r["checks"].items()}, "seconds": r["seconds"]}
                             for (sh, s), r in self.synth.items()])

    def checks_summary(self) -> pd.DataFrame:
        """Table 4: per check and case, in how many seeds it passes."""
        checks = self.checks_table()
        return pd.DataFrame([{"check": c, **{case: f"passes in {(g[c] == 'pass').sum()} of {len(g)} seeds"
                                            for case, g in checks.groupby("case", sort=False)}}
                             for c in checks.columns if c not in ("case", "seed", "seconds")])

    def r2_vs_real(self) -> list[dict]:
        """Held-out R2 per weight type and seed: the synthetic model, its shuffled control, then each real model."""
        syn = [{"model": "synthetic, layered" if not sh else "synthetic, shuffled", "weight": t, "seed": s, "r2": v["r2"]}
               for (sh, s), r in self.synth.items() for t, v in r["loo"].items()]
        real = [{"model": m, "weight": t, "seed": s,
                 "r2": float(np.mean([r["metrics"]["predictor"]["r2"] for r in rows]))}
                for m in self.studies for s, st in self.studies[m].items() for t, rows in st["loo"].items()]
        return syn + real

    def synthetic_errors(self) -> list[dict]:
        """On the synthetic model, against the truth: each method's regrown-layer weight error and logits error,
        and the source's logits error (the base: three layers missing)."""
        case = lambda sh: "layered" if not sh else "shuffled"
        err = [{"case": case(sh), "seed": s, "method": meth, "metric": what, "value": val}
               for (sh, s), r in self.synth.items()
               for meth in r["weights"]
               for what, val in (("new layers: weight error", r["weights"][meth]["new_layers"]["rel_error"]),
                                 ("logits error", r["outputs"][meth]["logits_rel_error"]))]
        return err + [{"case": case(sh), "seed": s, "method": "base", "metric": "logits error",
                       "value": r["outputs"]["source (not grown)"]["logits_rel_error"]} for (sh, s), r in self.synth.items()]
