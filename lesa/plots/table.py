"""Tables rendered the same way everywhere: significant digits, no truncation, a CSV beside each one."""
from __future__ import annotations

import base64
import csv
import html
import math
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def _sci(x: float, digits: int = 3) -> str:
    """Compact scientific notation: 5e-5, 1.01e-5, 8.75e5 (no '+', no leading zeros)."""
    m, e = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in m:
        m = m.rstrip("0").rstrip(".")
    return f"{m}e{int(e)}"


def fmt_num(x: Any, digits: int = 3, sci: bool = False) -> str:
    """One number as the book prints it: `digits` significant digits; integers in full with thousands
    separators; scientific notation below 1e-3 or from 1e5 on (or always, with sci=True; 0 stays 0)."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return _sci(float(x), digits) if sci and x != 0 else f"{int(x):,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    ax = abs(x)
    if sci or ax < 1e-3 or ax >= 10 ** max(digits + 2, 5):
        return _sci(x, digits)
    decimals = max(digits - 1 - int(math.floor(math.log10(ax))), 0)
    out = f"{x:,.{decimals}f}"
    return out.rstrip("0").rstrip(".") if "." in out else out


_SCI_COLUMNS = re.compile(r"(^|[^a-z])(lambda|λ|lam|lr|learning rate|weight decay)([^a-z]|$)", re.I)


class Table:
    """A rendered table: HTML in notebooks and the book (`_repr_html_`), Markdown in plain Jupyter
    text, with the CSV it was written to (linked under the table when `csv` was given). With `collapsed`, the
    HTML is a closed block whose one visible line is that text (a long table a reader opens on purpose)."""

    def __init__(self, header: list[str], body: list[list[str]], raw: list[list[Any]], csv_path: Path | None,
                 caption: str | None, index: bool, collapsed: str | None = None):
        self.header, self.body, self.raw, self.csv_path, self.caption, self.index = header, body, raw, csv_path, caption, index
        self.collapsed = collapsed

    def _repr_html_(self) -> str:
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        rows = []
        for r, raw in zip(self.body, self.raw):
            tds = []
            for k, (c, v) in enumerate(zip(r, raw)):
                num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                tag = "th" if (self.index and k == 0) else "td"
                cls = ' class="num"' if num else ""
                tds.append(f"<{tag}{cls}>{html.escape(c)}</{tag}>")
            rows.append("<tr>" + "".join(tds) + "</tr>")
        out = (f'<div class="lesa-table-wrap"><table class="lesa-table">{cap}<thead><tr>{head}</tr></thead>'
               f"<tbody>{''.join(rows)}</tbody></table>")
        if self.csv_path is not None:
            data = base64.b64encode(Path(self.csv_path).read_bytes()).decode()
            out += (f'<p class="lesa-table-csv"><a download="{html.escape(Path(self.csv_path).name)}" '
                    f'href="data:text/csv;base64,{data}">Download this table (CSV)</a></p>')
        out += "</div>"
        if self.collapsed:
            out = (f'<details class="lesa-table-more"><summary>{html.escape(self.collapsed)}</summary>{out}'
                   "</details>")
        return out

    def markdown(self) -> str:
        def cell(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(cell(h) for h in self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in self.body]
        return "\n".join(lines)

    _repr_markdown_ = markdown

    def __str__(self) -> str:
        return self.markdown()


def table(data: Any, csv: str | Path | None = None, digits: int = 3, index: bool | None = None,
          sci_columns: Iterable[str] = (), caption: str | None = None, collapsed: str | None = None,
          download: str | Path | None = None, show: Iterable[str] | None = None) -> Table:
    """Render a pandas DataFrame, a list of dicts or a dict of dicts as the book's table: every number
    with `digits` significant digits (fmt_num), nothing truncated, λ / learning-rate columns (and
    `sci_columns`) in scientific notation, None/NaN as "–". With `csv`, the full-precision values are
    written there too and the HTML links them for download; `download` links an existing CSV instead (the
    per-seed rows behind a summary). `collapsed`: the table is folded under that one line. ``show``: only these
    columns on the page (the CSV keeps every one), for a table wider than the text column."""
    header, raw, has_index = _rows(data, index)
    sci = {h for h in header if _SCI_COLUMNS.search(str(h))} | set(sci_columns)
    body = [[fmt_num(v, digits, sci=header[k] in sci) if not isinstance(v, str) else v for k, v in enumerate(r)]
            for r in raw]
    path = Path(download) if download is not None else None
    if csv is not None:
        path = Path(csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = _csv_writer(f)
            w.writerow(header)
            w.writerows([["" if v is None else v for v in r] for r in raw])
    if show is not None:
        keep = [k for k, h in enumerate(header) if h in set(show) or (has_index and k == 0)]
        header, body, raw = [header[k] for k in keep], [[r[k] for k in keep] for r in body], [[r[k] for k in keep] for r in raw]
    return Table([str(h) for h in header], body, raw, path, caption, has_index, collapsed)


def _csv_writer(f: Any) -> Any:
    return csv.writer(f)


def _rows(data: Any, index: bool | None) -> tuple[list[str], list[list[Any]], bool]:
    """(header, rows of raw values, whether the first column is an index) of a table-like object."""
    try:
        import pandas as pd
    except ImportError:                                   # pragma: no cover (pandas is a dependency)
        pd = None
    if pd is not None and isinstance(data, pd.Series):
        data = data.to_frame()
    if pd is not None and isinstance(data, pd.DataFrame):
        use_index = index if index is not None else not isinstance(data.index, pd.RangeIndex)
        cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in data.columns]
        header = ([str(data.index.name or "")] if use_index else []) + cols
        rows = []
        for idx, r in zip(data.index, data.itertuples(index=False, name=None)):
            vals = [None if (isinstance(v, float) and math.isnan(v)) else (v.item() if hasattr(v, "item") else v)
                    for v in r]
            rows.append(([" / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)] if use_index else []) + vals)
        return header, rows, use_index
    if isinstance(data, dict):                            # {row name: {column: value}}
        cols = list(dict.fromkeys(k for v in data.values() for k in v))
        return [""] + cols, [[str(k)] + [v.get(c) for c in cols] for k, v in data.items()], True
    data = list(data)
    cols = list(dict.fromkeys(k for r in data for k in r))
    return cols, [[r.get(c) for c in cols] for r in data], bool(index)
