"""Checks of the built book's HTML that a reader would otherwise find: what `jupyter-book build -W`
lets through.

    python -m lesa.book check --profile cpu [--screenshots]     # after a build; `make book-check`

- a Markdown table that was not rendered (a ``<p>`` holding ``| --- |``);
- log lines and stray reprs in notebook outputs (``[data] ...``, ``[eval] ...``, tqdm bars,
  ``PosixPath(...)``, ``<Figure size ...>``);
- a content image that is not a numbered figure with a caption, or whose alt text is a file path;
- a numbered figure with no image (a figure cell whose only output was text, e.g. "not yet run");
- a script or stylesheet loaded from the network (MathJax from a CDN: equations stay raw TeX offline);
- (with --screenshots) the landing and scoreboard pages in headless Chromium at desktop and phone
  width must not be blank.
Broken links and images are found by lesa.book.run.check_links.
"""
from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from .check_layout import MIN_WINDOW, chromium, framed, pages_at_widths
import numpy as np

# a Markdown table's delimiter row, also after smartquotes turned "---" into an en/em dash
RAW_TABLE = re.compile(r"\|\s*:?(?:-{3,}|[\u2013\u2014]+-*):?\s*\|")
# lines a reader should never see in an output: our loggers' prefixes, progress bars, reprs
LOG_LINE = re.compile(r"^[ \t]*\[(?:data|eval|lesa|book|cpt|train|bench|setup|expand|predictor|svd)\]", re.M)
TQDM = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+|\d+(?:\.\d+)?(?:it|s)/s\]")
REPRS = re.compile(r"PosixPath\(|WindowsPath\(|<Figure size \d|<matplotlib\.\w+|<Axes:|object at 0x[0-9a-f]+>")
PATH_ALT = re.compile(r"(^|/)[^ ]*\.(png|jpe?g|svg|gif|webp)$|^[0-9a-f]{32,}|^\.\.?/|^_images/", re.I)
REMOTE = re.compile(r"^(?:https?:)?//", re.I)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Node:
    __slots__ = ("tag", "attrs", "children", "parent", "text")

    def __init__(self, tag: str, attrs: dict, parent: "_Node | None"):
        self.tag, self.attrs, self.children, self.parent, self.text = tag, attrs, [], parent, []

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all_text(self) -> str:
        out = list(self.text)
        for c in self.children:
            out.append(c.all_text())
        return "".join(out)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def ancestors(self):
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


class _Tree(HTMLParser):
    """A forgiving DOM: enough structure to ask "is this image inside a captioned figure?"."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, {k: (v or "") for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(_Node(tag, {k: (v or "") for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:      # unmatched end tags are ignored
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def parse(html: str) -> _Node:
    t = _Tree()
    t.feed(html)
    t.close()
    return t.root


def _content(root: _Node) -> _Node:
    """The page's article (theme chrome, navigation and footers excluded) when there is one."""
    for n in root.iter():
        if n.tag == "article" or "bd-article" in n.classes():
            return n
    return root


def _is_content_image(img: _Node) -> bool:
    src = img.attrs.get("src", "")
    return "_images/" in src or "generated/" in src or src.startswith("data:image")


def check_html(html: str, page: str = "page") -> list[str]:
    """Problems of one rendered page, one line each ("<page>: <what>"); empty when it reads well."""
    problems: list[str] = []
    root = parse(html)
    for n in root.iter():                        # the whole page: the theme's <head> loads scripts too
        url = n.attrs.get("src") if n.tag == "script" else (
            n.attrs.get("href") if n.tag == "link" and "stylesheet" in (n.attrs.get("rel") or "") else None)
        if url and REMOTE.match(url):
            problems.append(f"{page}: loads {url[:80]} from the network (the book must read offline)")
    body = _content(root)
    for n in body.iter():
        if n.tag == "p":
            t = n.all_text()
            if RAW_TABLE.search(t):
                problems.append(f"{page}: raw Markdown table in a paragraph: {' '.join(t.split())[:80]!r}")
        if "cell_output" in n.classes():
            t = n.all_text()
            for rx, what in ((LOG_LINE, "log line"), (TQDM, "progress bar"), (REPRS, "stray repr")):
                m = rx.search(t)
                if m:
                    start = t.rfind("\n", 0, max(m.end() - 1, 0)) + 1
                    line = t[start:].split("\n", 1)[0]
                    problems.append(f"{page}: {what} in an output: {line.strip()[:80]!r}")
        if n.tag == "figure":
            tags = {c.tag: c for c in n.iter()}          # a figure's caption and image, if any
            if "figcaption" in tags and "img" not in tags:
                cap = " ".join(tags["figcaption"].all_text().split())
                problems.append(f"{page}: figure without an image: {cap[:60]!r}")
        if n.tag == "img" and _is_content_image(n):
            src = n.attrs.get("src", "")
            alt = n.attrs.get("alt", "").strip()
            name = src.rsplit("/", 1)[-1][:24]
            if not alt or PATH_ALT.search(alt) or alt == src:
                problems.append(f"{page}: image {name} has no alt text but a path ({alt[:40]!r})")
            fig = next((a for a in n.ancestors() if a.tag == "figure"), None)
            cap = next((c for c in fig.iter() if c.tag == "figcaption"), None) if fig is not None else None
            if cap is None or not cap.all_text().strip():
                problems.append(f"{page}: image {name} is not a figure with a caption")
            elif not any("caption-number" in c.classes() for c in cap.iter()):
                problems.append(f"{page}: figure with image {name} has a caption but no number")
    return problems


SKIP_PAGES = ("genindex.html", "search.html", "py-modindex.html")


def check_site(html_root: str | Path) -> list[str]:
    """check_html over every page of a built site (theme templates in _static/ and index pages skipped)."""
    root = Path(html_root)
    problems = []
    for p in sorted(root.rglob("*.html")):
        rel = p.relative_to(root)
        if "_static" in rel.parts or rel.name in SKIP_PAGES or rel.parts[0].startswith("_"):
            continue
        problems += check_html(p.read_text(encoding="utf-8", errors="replace"), str(rel))
    return problems


# ------------------------------------------------------------------------------ screenshots
def screenshot(page: Path, out: Path, width: int, height: int = 2000) -> Path:
    """A PNG of `page` at a window `width`; below Chromium's narrowest window (lesa.book.check_layout.MIN_WINDOW)
    the page is laid out in an iframe of that width, as on a phone, and the shot is cropped to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    frame = framed(Path(page), width, height) if width < MIN_WINDOW else None
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={max(width, MIN_WINDOW)},{height}", f"--screenshot={out}", (frame or page).resolve().as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        if frame:
            frame.unlink(missing_ok=True)
    if not out.exists():
        raise RuntimeError(f"Chromium wrote no screenshot of {page} (command: {' '.join(cmd)})")
    if frame:
        import matplotlib.image as mpimg

        mpimg.imsave(out, mpimg.imread(out)[:, :width])
    return out


def blank_reason(png: Path) -> str | None:
    """Why a screenshot looks blank (None when it shows content): almost one colour, or next to nothing
    drawn but the background."""
    import matplotlib.image as mpimg
    img = mpimg.imread(png)[..., :3]
    bg = np.median(img.reshape(-1, 3), axis=0)
    differs = (np.abs(img - bg).max(axis=-1) > 0.1).mean()
    if img.std() < 0.02:
        return f"nearly one colour (std {img.std():.3f})"
    if differs < 0.01:
        return f"only {differs:.1%} of pixels differ from the background"
    return None


SHOT_PAGES = ("book/intro", "book/scoreboard")
# what `python -m lesa.book check --screenshots` shoots and measures besides them: every chapter
CHAPTER_PAGES = tuple(f"book/chapters/{n}" for n in ("01_svd_evidence", "02_predictor", "03_expansion", "04_cpt_curves",
                                                     "05_downstream", "06_beyond", "07_scale"))


def screenshots(html_root: str | Path, out_dir: str | Path,
                pages: tuple[str, ...] = SHOT_PAGES) -> tuple[list[Path], list[str]]:
    """Pages (by default the landing and scoreboard pages) at 1280 px and 390 px (phone) width: (files, problems)."""
    out_dir, files, problems = Path(out_dir), [], []
    for page, html, kind, width in pages_at_widths(html_root, pages, problems, "screenshot: no page {html}"):
        png = screenshot(html, out_dir / f"{page.replace('/', '_')}-{kind}.png", width, 2000 if kind == "desktop" else 1800)
        files.append(png)
        why = blank_reason(png)
        if why:
            problems.append(f"screenshot {png.name}: looks blank: {why}")
    return files, problems
