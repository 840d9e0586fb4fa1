"""lm-eval task configs (YAML templates) and the helper functions they reference (utils.py)."""
