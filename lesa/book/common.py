"""What every part of the book shares: its notebooks, where its pages and builds live, the claims'
index and the error a user can act on."""
from __future__ import annotations


from .. import PROJECT_ROOT
from ..claims.paper import CLAIMS as _CLAIMS

NOTEBOOKS = ("01_svd_evidence", "02_predictor", "03_expansion", "04_cpt_curves", "05_downstream", "06_beyond",
             "07_scale")
NB_DIR = PROJECT_ROOT / "notebooks"
BOOK_DIR = PROJECT_ROOT / "book"
CHAPTERS = BOOK_DIR / "chapters"
GENERATED = BOOK_DIR / "generated"
BUILD_HTML = PROJECT_ROOT / "_build" / "html"
PAGES = ("book/intro", "book/reproduce", "book/grow", "book/scoreboard", *[f"book/chapters/{n}" for n in NOTEBOOKS],
         "book/bench", "book/limitations", "book/provenance", "book/api", "book/references")
# figures a finished notebook must have saved, whatever the results (04/05 draw only when runs exist)
REQUIRED_FIGURES = {"01_svd_evidence": ["spectra", "tsne", "pca", "similarity_by_distance_concat", "continuity_summary",
                                        "continuity_by_model"],
                    "02_predictor": ["loss_curves", "loo_r2", "loo_cosine", "loo_norm_ratio", "lambda_norms",
                                     "r2_synthetic_vs_real", "synthetic_errors"],
                    "03_expansion": ["ppl_before_training", "lesa_norm_ratio", "lesa_cos_lower", "residual_effect",
                                     "norm_ablation", "variants_before_training"],
                    "04_cpt_curves": [], "05_downstream": ["main_table"], "06_beyond": [], "07_scale": ["scale_ladder"]}
# result folders a notebook reads (their files enter its input hash)
READS = {"04_cpt_curves": ("cpt", "downstream"),   # C12b: the WikiText perplexity of its two runs
         "05_downstream": ("cpt", "downstream"),
         "06_beyond": ("cpt", "03_expansion", "05_downstream"),
         "07_scale": ("scale",)}                  # the ladder (lesa.study.scale): the scale profile's, or smoke's own


# claim id -> (statement, notebook that judges it)
CLAIMS = {c.id: (c.statement, c.notebook) for c in _CLAIMS.values()}


class BookError(RuntimeError):
    pass
