"""The paper's claims and how each is judged: the paper's numbers (paper), the verdict record and readings
(verdict), the rules that turn measurements into verdicts (rules) and chapter 6's seed comparisons (beyond).
Pure functions of numbers: no models, no files.

Layer 5: may import the layers below (core, data, grow, eval, train).
"""
