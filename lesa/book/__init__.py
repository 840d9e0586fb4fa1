"""The book: run the notebooks (run), their pages (page), the generated pages and scoreboard (pages,
common), the reader's checks (check) and the whole replication (replicate). `python -m lesa.book` runs
lesa.book.run.

Layer 9, the top: may import every layer.
"""
