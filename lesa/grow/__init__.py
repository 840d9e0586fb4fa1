"""Growing a model: plans as data (plans, spec), the one executor (expand) and its slot kinds (kinds), the
SVD, the predictors (predictor, ridge), the factor cache, the released recipe (reference), quantisation and
the `lesa` command (cli).

Layer 2: may import lesa.core and lesa.data.
"""
