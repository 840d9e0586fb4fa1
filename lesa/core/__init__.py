"""What every floor uses: paths and JSON under the project (store), cache keys from code (codekey, cachekeys),
the architecture table (arch), loading and converting models (models), precision, FLOPs, the run ledger.

Layer 0: imports nothing else from lesa.
"""
