"""Evaluating a model: lm-eval benchmarks on in-memory models (evaluate, harness, scoring, tasks/), the
perplexity protocol (protocol), prefix-LM scoring and the shared-prefix speed-up.

Layer 3: may import lesa.core, lesa.data and lesa.grow.
"""
