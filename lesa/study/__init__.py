"""The experiments, one function per chapter's computation: the profiles (what a machine runs), the
measurements (analysis, common, growth, predictor), chapter 3's tables and verdicts from the grown models'
measurements (before_training), the CPT comparison (cpt, results), chapters 2, 4 and 6's tables and verdicts
(predictor_chapter, curves, variants), step-0 diagnostics, the step-cost bench, the synthetic model, the norm
study and the scale ladder.

Layer 6: may import every layer below (core, data, grow, eval, train, claims).
"""
