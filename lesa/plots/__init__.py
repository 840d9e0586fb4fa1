"""Figures and tables from saved results: one style (style), tables (table), growth figures (growth) and the
chapters' figures (figures). Draws; computes nothing that a verdict depends on.

Layer 7: may import every layer below.
"""
