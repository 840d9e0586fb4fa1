"""What every notebook does around its own content: load the profile, keep the results folder and
the saved figures, show tables and verdicts as markdown, and write the manifest and the verdicts.

    page = Page("02_predictor", profile, results_root)
    page.save(fig, "loss_curves")                 # results/<profile>/02_predictor/figures/loss_curves.png
    page.table(df)                                # a real markdown table on the page
    page.finish(verdicts)                         # manifest.json, verdicts/<notebook>.json, verdict table
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence
from ..core.layout import Results
from ..claims.paper import fmt
from ..claims.verdict import markdown, spread_text
from ..core.store import write_json
from ..eval.protocol import ppl_protocol
from ..plots import style
from ..plots.style import setup
from ..plots.table import table
from ..study.profiles import load_profile
from ..study.results import write_verdicts
from .display import uniform


class Page:
    def __init__(self, notebook: str, profile: str, results_root: str = "results", check_device: bool = False,
                 announce: bool = True):
        self.notebook, self.profile, self.results_root = notebook, profile, Path(results_root)
        self.results = Results(profile, results_root)          # where this profile's results live (lesa.core.layout)
        self.prof = load_profile(profile, check_device=check_device)
        self.protocol = ppl_protocol(self.prof)
        self.seeds: list[int] = list(self.prof["predictor"]["seeds"])
        self.out = self.results.chapter(notebook)
        self.fig_dir = self.out / "figures"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.figures: list[str] = []
        self.t_start = time.perf_counter()
        self.n_tables = 0
        setup()
        if announce:               # answer-first chapters say it at their end (profile_note): logistics go last
            self.profile_note()

    def profile_note(self) -> None:
        self.md(f"**Profile `{self.prof['name']}`**: {self.prof['description']}.")

    def caption(self, text: str) -> str:
        """The next table's caption, numbered in the order the page shows its tables: "Table N. text"."""
        self.n_tables += 1
        return f"Table {self.n_tables}. {text}"

    # ------------------------------------------------------------------ display
    @staticmethod
    def md(text: str) -> None:
        """Show markdown, in the book's one format (lesa.book.display.uniform: spreads as "median (min–max, n seeds)",
        "±", display names for method, task and predictor ids; small measured values stay as measured)."""
        from IPython.display import Markdown, display

        display(Markdown(uniform(text, tiny=False)))

    def table(self, df: Any, digits: int = 3, csv: str | None = None, index: bool = True,
              caption: str | None = None) -> None:
        """Show a DataFrame as a markdown table (numbers through lesa.claims.rules.fmt); optionally save it as CSV.
        ``caption`` (from Page.caption) goes above it, its number in bold."""
        if csv:
            df.to_csv(self.out / csv, index=index)
        cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
        cell = lambda v: fmt(v, digits) if isinstance(v, float) else ("" if v is None else str(v).replace("|", "\\|"))
        lines = ([f"**{caption.split('. ', 1)[0]}.** {caption.split('. ', 1)[1]}", ""] if caption else []) + \
            ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for idx, row in df.iterrows():
            vals = ([str(idx)] if index else []) + [cell(v) for v in row.tolist()]
            lines.append("| " + " | ".join(vals) + " |")
        self.md("\n".join(lines))

    def seed_table(self, df: Any, by: list[str], cols: list[str], csv: str | None = None, digits: int = 3,
                   caption: str | None = None, collapsed: str | None = None) -> None:
        """One row per `by` group; each column's median [min, max] over the seeds in the group (a
        deterministic method has one value). The per-seed rows go to `csv`. ``caption`` ("Table 2. ...", from
        Page.caption) numbers it; ``collapsed`` (the one line shown of a folded table) makes it the book's folded
        HTML table (lesa.plots.table), linking the per-seed CSV for download."""
        if csv:
            df.to_csv(self.out / csv, index=False)
        if collapsed is None:
            self.table(seed_summary(df, by, cols, digits), index=False, caption=caption)
            return
        from IPython.display import display

        display(table(seed_summary(df, by, cols, digits), digits=digits, index=False, caption=caption,
                      collapsed=collapsed, download=self.out / csv if csv else None))

    def save(self, fig: Any, name: str) -> Any:
        self.figures.append(str(style.save(fig, self.fig_dir, name)))
        return fig

    # ------------------------------------------------------------------ the end of every notebook
    def finish(self, verdicts: Sequence[Any], source_profile: str | None = None) -> None:
        write_json(self.out / "manifest.json", {"notebook": self.notebook, "profile": self.profile,
                                                "figures": self.figures,
                                                "seconds": round(time.perf_counter() - self.t_start, 1)})
        write_verdicts(self.results.verdicts(), self.notebook, list(verdicts),
                       profile=self.profile, source_profile=source_profile)
        if verdicts:                # a chapter beyond the paper judges none of its claims
            self.md("### Verdict (computed from the results above by the package's claim rules)\n\n" + markdown(verdicts))


# ------------------------------------------------------------------ several models, several seeds
def wide_seed_summary(df: Any, row: str, across: str, col: str, digits: int = 3) -> Any:
    """seed_summary of one column with ``across``'s values as columns: one row per ``row`` (in first-seen order), its
    seed count, then one column per ``across`` value (chapter 3's Table 2: methods by evaluation set, 4 rows instead of
    16). Empty in, empty out."""
    long = seed_summary(df, [row, across], [col], digits)
    if long.empty:
        return long
    seeds = long.groupby(row, sort=False)["seeds"].max()
    wide = long.pivot(index=row, columns=across, values=col).reindex(seeds.index)[list(dict.fromkeys(long[across]))]
    wide.insert(0, "seeds", seeds)
    wide.columns.name = None
    return wide.reset_index()


def seed_summary(df: Any, by: list[str], cols: list[str], digits: int = 3) -> Any:
    """Page.seed_table's rows as a DataFrame (for lesa.plots.figures.table): one row per `by` group, each column
    as median [min, max] over the seeds in the group."""
    import pandas as pd

    rows = []
    for key, g in df.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = int(g["seed"].nunique()) if "seed" in g else 1
        for c in cols:
            row[c] = spread_text([float(x) for x in g[c].dropna()], digits, compact=True)
        rows.append(row)
    return pd.DataFrame(rows)


def quiet():
    """A context manager that keeps what a computation prints off the page: stdout and stderr (our
    loggers' "[eval] ..." lines, tqdm bars, library warnings) go to a buffer, logging below ERROR is
    muted, tqdm is disabled. Errors still propagate with their traceback.

        with quiet():
            res = grow_and_measure(...)
    """
    @contextlib.contextmanager
    def _quiet():
        buf, old_disable, old_tqdm = io.StringIO(), logging.root.manager.disable, os.environ.get("TQDM_DISABLE")
        logging.disable(logging.WARNING)
        os.environ["TQDM_DISABLE"] = "1"
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield buf
        finally:
            logging.disable(old_disable)
            if old_tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = old_tqdm

    return _quiet()
