"""What a new reader of the built book trips over in its words and figures (run by lesa.book check):

- identifiers of the code in prose: config keys (`expansion.seeded`), run ids (`lesa_fp-0-p0`), snake_case
  names (`random_zero_out`), dict reprs ("{'hidden': 256, ...}"), file paths, and build-time wording ("as soon
  as those runs have trained");
- an image of a table (a figure whose alt text or caption calls it a table): tables are HTML, searchable;
- a numbered figure that the page's prose never cites ("Figure 3", or a {numref} link to it).

Pages that are about the code (how to reproduce, the API, provenance, benchmarks) may name it; the checks of
identifiers skip them. The checks read the built HTML with lesa.book.check's forgiving parser.
"""
from __future__ import annotations

import re
from pathlib import Path

from .check import SKIP_PAGES, _content, parse

# pages whose subject is the code, its commands and files: identifiers are their content
CODE_PAGES = ("book/reproduce.html", "book/grow.html", "book/api.html", "book/provenance.html", "book/bench.html")
PROSE_TAGS = ("p", "li", "td", "th", "figcaption", "caption", "dd", "dt")
# where code is allowed to show: code blocks, cell inputs, math, the theme's navigation
_SKIP_CLASSES = {"highlight", "cell_input", "math", "MathJax", "katex", "bd-toc", "toctree-wrapper", "headerlink"}

IDENTIFIERS = (
    (re.compile(r"\{'[^']+':"), "a dict repr"),
    (re.compile(r"(?<![\w/.-])(?:results|configs|runs|notebooks|lesa|data|book|_build)/[\w./<>*-]+"), "a path"),
    (re.compile(r"(?<![\w.-])(?:[a-z]+_[a-z0-9_]+-[\w.-]*\w|[a-z]+(?:_[a-z0-9]+)*(?:-[\w.]+)*-(?:seed|p)\d+)(?![\w-])"),
     "a run id"),
    (re.compile(r"(?<![\w./-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w(-])"), "a snake_case identifier"),
    (re.compile(r"(?<![\w./-])[a-z_]+\.[a-z_]+(?:\.[a-z_]+)*(?![\w(/-])"), "a config key"),
    (re.compile(r"\bas soon as (?:those|these|its|the) runs?\b|\bnot measured yet\b|\buntil they exist\b"),
     "build-time wording"),
)
# dotted names that are words, not keys (file types shown as words, abbreviations)
_DOTTED_OK = re.compile(r"^(?:e\.g|i\.e|et\.al|vs|etc)\b|\.(?:org|io|com|net|edu|ai)$")
# a command a reader can type names a module: the command is allowed, not its module name in a sentence
COMMAND = re.compile(r"python -m [\w.]+")
TABLE_IMAGE = re.compile(r"^\s*(?:a\s+|the\s+)?table\b", re.I)
CITATION = re.compile(r"Fig(?:ure|\.)\s*(\d+)(?!\d)")   # text pieces can abut: "Figure 24Figure 21"


def _skipped(n) -> bool:
    for a in (n, *n.ancestors()):
        if a.tag in ("pre", "nav", "script", "style") or a.classes() & _SKIP_CLASSES:
            return True
    return False


INLINE = {"a", "abbr", "b", "code", "em", "i", "kbd", "small", "span", "strong", "sub", "sup", "var", "cite", "q",
          "mark", "s", "u", "br", "wbr"}


def inline_text(n) -> str:
    """An element's own words: its text and its inline children's (links, code spans, emphasis), not its block
    children (each judged on its own) nor math or code blocks. The parser keeps a node's text apart from its
    children, so the pieces are joined with spaces (two sentences never read as one "a.b" key)."""
    parts = list(n.text)
    for c in n.children:
        if c.tag in INLINE and not (c.classes() & _SKIP_CLASSES):
            parts.append(inline_text(c))
    return " ".join(parts)


def identifier_problems(html: str, page: str = "page") -> list[str]:
    """Identifiers of the code in a page's prose, one line each (the first hit per element)."""
    problems = []
    for n in _content(parse(html)).iter():
        if n.tag not in PROSE_TAGS or _skipped(n):
            continue
        text = COMMAND.sub("", " ".join(inline_text(n).split()))
        for rx, what in IDENTIFIERS:
            hit = next((m for m in rx.finditer(text) if not (what == "a config key" and _DOTTED_OK.search(m[0]))), None)
            if hit:
                problems.append(f"{page}: {what} in prose: {hit[0][:60]!r} in {text[max(0, hit.start() - 30):hit.end() + 30]!r}")
                break
    return problems


def figure_problems(html: str, page: str = "page") -> list[str]:
    """Images of tables, and numbered figures that no sentence of the page cites."""
    problems, numbers = [], []
    body = _content(parse(html))
    cited = set()
    for n in body.iter():
        if n.tag == "figure":
            img = next((c for c in n.iter() if c.tag == "img"), None)
            cap = next((c for c in n.iter() if c.tag == "figcaption"), None)
            num = next((c for c in n.iter() if "caption-number" in c.classes()), None)
            text = " ".join(c.all_text() for c in n.iter() if "caption-text" in c.classes()).strip()
            if img is not None and (TABLE_IMAGE.search(img.attrs.get("alt", "")) or TABLE_IMAGE.search(text)):
                problems.append(f"{page}: an image of a table: {(img.attrs.get('alt') or text)[:70]!r} (make it an HTML table)")
            if num is not None and cap is not None:
                m = CITATION.search(num.all_text())
                if m:
                    numbers.append(m[1])
        elif n.tag in PROSE_TAGS and not any(a.tag == "figcaption" for a in n.ancestors()) and n.tag != "figcaption":
            cited.update(CITATION.findall(n.all_text()))
    for num in numbers:
        if num not in cited:
            problems.append(f"{page}: Figure {num} is never cited in the text")
    return problems


def check_site(html_root: str | Path) -> list[str]:
    """identifier_problems (pages about the code skipped) and figure_problems over a built site."""
    root = Path(html_root)
    problems = []
    for p in sorted(root.rglob("*.html")):
        rel = p.relative_to(root)
        if "_static" in rel.parts or rel.name in SKIP_PAGES or rel.parts[0].startswith("_") or rel.name.startswith("_"):
            continue
        html = p.read_text(encoding="utf-8", errors="replace")
        if str(rel) not in CODE_PAGES:
            problems += identifier_problems(html, str(rel))
        problems += figure_problems(html, str(rel))
    return problems
