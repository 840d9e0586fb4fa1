"""The paper's claims C1-C12 and the paper's numbers they quote, typed here once (tests check that no
other source in lesa/ or the notebooks types them again)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

# Where each claim's wording comes from (the tags of the paper digest; the paper's body was not available
# offline). Shown to readers in words, never as the bare tag.
SOURCE_TAGS = {"ABS": "the paper's abstract", "CAP": "the paper's Figure 1 caption",
               "PN": "a secondary summary of the paper (papernotes.org)", "ML": "a secondary review (themoonlight.io)",
               "LIN": "a secondary summary (liner.com)", "AL": "a secondary summary (arxivlens.com)",
               "SS": "a secondary summary (sciencestack.ai)", "FIG": "the paper's method figure",
               "CODE": "the released code", "3P": "the OpT-DeUS rerun of the released code"}


def source_text(tags: str) -> str:
    """"[ABS][CAP]" -> "the paper's abstract; the paper's Figure 1 caption": every tag in words, never the bare key
    (several in one bracket, "[PN, T-A]", included; words beside the brackets, "+ our reading", kept)."""
    words = []
    for inner in re.findall(r"\[([^\]]+)\]", tags or ""):
        for tok in (x.strip() for x in inner.split(",")):
            words.append(SOURCE_TAGS.get(tok) or SOURCE_DETAILS.get(tok) or tok)
    rest = re.sub(r"\[[^\]]*\]", "", tags or "").strip(" +;")
    words += [rest] if rest else []
    return "; ".join(words) if words else (tags or "")


# what follows a source tag inside its bracket: the part of that source (the digest's table labels)
SOURCE_DETAILS = {"T-A": "its main results table", "T-B": "its SFT table", "T-C": "its code-CPT table",
                  "T-D": "its model-family table"}


# ------------------------------------------------------------------------------ the paper's numbers
# [PN] T-A: Llama3-8B -> 48 layers (11.5B), CPT on Wikipedia. PPL lower is better; avg = mean score.
PAPER_MAIN = {"LESA-3k": {"ppl": 5.27, "avg": 64.11}, "LESA-6k": {"ppl": 5.13, "avg": 64.30},
              "LLaMA Pro-6k": {"ppl": 5.44, "avg": 62.67}, "SOLAR-6k": {"ppl": 8.09, "avg": 47.86}}
# [PN] T-A: wall-clock of 6k CPT steps, hours. Step-time ratios are computed from these.
PAPER_HOURS = {"lesa": 45.6, "llama_pro": 56.4, "solar": 75.6}
PAPER_STEP_RATIO = {m: h / PAPER_HOURS["lesa"] for m, h in PAPER_HOURS.items()}
# [3P] OpT-DeUS rerun of the official code, Llama3.1-8B -> 11.5B, CPT step 12100 (wikitext word PPL,
# mean of 7 zero-shot accuracies). Independent evidence, not the paper's numbers.
OPT_DEUS_CPT = {"Base (8B)": {"ppl": 8.35, "avg": 66.20}, "LESA": {"ppl": 7.73, "avg": 68.77},
                "LLaMA Pro": {"ppl": 7.81, "avg": 68.56}, "SOLAR": {"ppl": 9.90, "avg": 64.20}}
# [3P] the same rerun on Llama 3.2-1B -> 1.72B (16 -> 24 layers), CPT step 12100
OPT_DEUS_CPT_1B7 = {"LESA": {"ppl": 12.28, "avg": 51.51}, "LLaMA Pro": {"ppl": 12.43, "avg": 50.72},
                    "SOLAR": {"ppl": 13.87, "avg": 47.91}}
PAPER_SFT = {"lesa": 31.57, "llama_pro_share": 0.77, "solar_share": 0.84}          # [PN] T-B
PAPER_HUMANEVAL = {"lesa": 25.00, "llama_pro": 10.98, "solar": 2.44}               # [PN] T-C
PAPER_PREDICTOR = {"minutes": 5, "epochs": 5, "code_epochs": 10}                   # [PN] C8; code: 10
PAPER_CONVERGENCE = {"lesa_stable_steps": 2000, "llama_pro_steps": 5000, "compute_share": 0.5}  # [PN][AL]
PAPER_LOO_SPLIT = {"samples": 150, "train": 120, "test": 30}                       # [PN] C7


def fmt(x: Any, nd: int = 3) -> str:
    """Number formatting for computed prose (never typed numbers): nd significant digits,
    thousands separators, scientific notation outside [1e-3, 1e5), trailing zeros dropped."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.{nd}g}"
    if ax < 1:
        return f"{x:.{nd}g}"
    decimals = max(nd - 1 - int(math.floor(math.log10(ax))), 0)
    out = f"{x:,.{decimals}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


def and_list(items: Sequence[str]) -> str:
    """Items joined as prose lists them: "a", "a and b", "a, b and c"."""
    items = list(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1]


def _p(v: float) -> str:
    """A paper value as the paper prints it (two decimals)."""
    return f"{v:.2f}"


def _main(metric: str, keys: Sequence[str] = ("LESA-6k", "LLaMA Pro-6k", "SOLAR-6k")) -> str:
    return " / ".join(_p(PAPER_MAIN[k][metric]) for k in keys)


def _ratio_text(r: dict) -> str:
    return f"1 : {fmt(r['llama_pro'])} : {fmt(r['solar'])}"


# ------------------------------------------------------------------------------ the claims
@dataclass(frozen=True)
class Claim:
    id: str
    statement: str         # short form for tables
    wording: str           # the claim as the digest gives it (quote or close paraphrase)
    source: str            # the digest's source tags
    paper: str             # the paper's evidence in one line, built from the constants above
    notebook: str          # the notebook that judges it


CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("C1", "concatenated SVD reveals inter-layer continuity",
          "concatenating a weight type over layers and applying SVD reveals latent inter-layer patterns "
          "(continuity); t-SNE of the top-1 singular coefficients, mainly gate_proj",
          "[ABS][PN][ML]", "qualitative t-SNE figure, no numbers", "01_svd_evidence"),
    Claim("C2", "heuristic duplication initialises worse and converges slower",
          "existing depth scaling-up (interpolation/LLaMA Pro, stack/SOLAR) uses heuristic duplication, "
          "giving poorer initialisation and slower CPT convergence", "[ABS][CAP]",
          "qualitative (Figure 1 and the CPT loss curves)", "04_cpt_curves"),
    Claim("C3", "LESA gives the best initialisation",
          "LESA gives better initialisation than the baselines: lowest initial training loss; lower PPL "
          "than SOLAR across families", "[PN]",
          "lowest initial loss; LESA PPL < SOLAR on 6 models (no values)", "03_expansion"),
    Claim("C4", "LESA converges faster (< half the compute)",
          "stable by ~2k steps vs ~5k for LLaMA Pro; \"same convergence level as LLaMA Pro with less than "
          "half the training cost\"", "[PN][AL][ABS]",
          f"stable by ~{fmt(PAPER_CONVERGENCE['lesa_stable_steps'])} vs ~{fmt(PAPER_CONVERGENCE['llama_pro_steps'])} "
          f"steps; < {fmt(PAPER_CONVERGENCE['compute_share'])} of the cost", "04_cpt_curves"),
    Claim("C5", "better final quality after CPT",
          "after CPT LESA-6k beats LLaMA Pro-6k and SOLAR-6k in PPL and benchmark average; LESA-3k (half "
          "the steps) already beats both baselines at 6k", "[PN, T-A]",
          f"PPL {_main('ppl')}; avg {_main('avg')} (LESA-6k / LLaMA Pro-6k / SOLAR-6k); LESA-3k "
          f"{_p(PAPER_MAIN['LESA-3k']['ppl'])} / {_p(PAPER_MAIN['LESA-3k']['avg'])}", "05_downstream"),
    Claim("C6", "cheaper training steps",
          "6k CPT steps take less wall-clock for LESA than for LLaMA Pro and SOLAR", "[PN]",
          f"{_ratio_text(PAPER_STEP_RATIO)} ({' / '.join(fmt(h) + ' h' for h in PAPER_HOURS.values())})",
          "04_cpt_curves"),
    Claim("C7a", "predictor: held-out loss on par with training loss",
          "G_W really learns a pattern and generalises: its test loss matches its training loss",
          "[PN]", f"test loss ~ training loss ({PAPER_LOO_SPLIT['train']}/{PAPER_LOO_SPLIT['test']} split "
          "over Llama-3 variants)", "02_predictor"),
    Claim("C7b", "predictor: learns more than a trivial predictor",
          "G_W really learns a pattern (read here as: it predicts a held-out layer better than predicting "
          "zeros, the neighbours' average, a neighbour copy or a linear ridge map)", "[PN] + our reading",
          "not reported", "02_predictor"),
    Claim("C8", "predictor training is cheap",
          "predictor cost is negligible: < 5 minutes, 5 epochs (code: 10 epochs)", "[PN][CODE]",
          f"< {PAPER_PREDICTOR['minutes']} min, {PAPER_PREDICTOR['epochs']} epochs (GPU)", "02_predictor"),
    Claim("C9", "works across model families and sizes",
          "1.5x on Llama3-8B/70B, Qwen2.5-1.5B/7B/32B, Mistral-Small-24B: LESA PPL always below SOLAR; "
          "SOLAR PPL = INF on Qwen2.5-32B", "[PN][LIN][SS]", "LESA PPL < SOLAR on every model", "03_expansion"),
    Claim("C10", "gains persist after SFT", "after SFT, LESA's average stays above LLaMA Pro's and SOLAR's",
          "[PN]", f"LESA-SFT {_p(PAPER_SFT['lesa'])} = 100%; LLaMA Pro {fmt(100 * PAPER_SFT['llama_pro_share'])}%, "
          f"SOLAR {fmt(100 * PAPER_SFT['solar_share'])}%", "05_downstream"),
    Claim("C11", "works for code CPT", "after code-domain CPT (BigCode), LESA leads on HumanEval",
          "[PN]", " / ".join(_p(v) for v in PAPER_HUMANEVAL.values()) + " (HumanEval)", "05_downstream"),
    Claim("C12a", "ablation: w/o SVD between LESA and LLaMA Pro",
          "w/o SVD (MLP on raw weights) degrades but still beats LLaMA Pro (after CPT)", "[PN]",
          "LESA < w/o SVD < LLaMA Pro after CPT (no values)", "04_cpt_curves"),
    Claim("C12b", "ablation: freezing the original layers helps",
          "w/o freezing the original layers: slower, fluctuating convergence", "[PN]",
          "without freezing: slower, fluctuating loss (no values)", "04_cpt_curves"),
    Claim("C12c", "ablation: the norm loss is needed",
          "the norm loss L2 is needed because L1 (MSE) alone shrinks predictions toward zero", "[ML][PN]",
          "plain MSE shrinks predictions toward zero (no values)", "03_expansion"),
)}


def opt_deus_sentence() -> str:
    """The independent OpT-DeUS run of the released code, in one sentence built from its constants: what a larger
    model and a longer CPT gave LESA against LLaMA Pro (stated beside our not-reproduced claims)."""
    big, small = OPT_DEUS_CPT, OPT_DEUS_CPT_1B7
    return ("Independent run of the released code (OpT-DeUS, FineWeb-Edu CPT, 12,100 steps): WikiText perplexity LESA "
            f"{_p(small['LESA']['ppl'])} vs LLaMA Pro {_p(small['LLaMA Pro']['ppl'])} at 1.7B and "
            f"{_p(big['LESA']['ppl'])} vs {_p(big['LLaMA Pro']['ppl'])} at 11.5B (LESA at or below LLaMA Pro at both sizes; "
            f"zero-shot average {_p(small['LESA']['avg'])} vs {_p(small['LLaMA Pro']['avg'])} and "
            f"{_p(big['LESA']['avg'])} vs {_p(big['LLaMA Pro']['avg'])}, margins of "
            f"{_p(small['LESA']['avg'] - small['LLaMA Pro']['avg'])} and {_p(big['LESA']['avg'] - big['LLaMA Pro']['avg'])} "
            "points).")
