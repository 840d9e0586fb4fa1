"""Benchmarks of this implementation: expansion stages against the released recipe, training, evaluation
and hardware (fp32 vs bf16, shared prefix), and their report. `python -m lesa.bench` runs lesa.bench.run.

Layer 8: may import every layer below.
"""
