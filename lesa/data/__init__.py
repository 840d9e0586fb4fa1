"""Data preparation: the benchmarks, WikiText and the CPT corpus (prepare, corpus), tokenised into shards.

Layer 1: may import lesa.core.
"""
