"""How the built book lays out in a real browser (headless Chromium), at desktop and phone width:

- the page itself must not be wider than the window (nothing makes the whole page scroll sideways);
- at desktop width every table and image must fit the text column (a table that needs sideways scrolling at
  1280 px hides its last columns from a reader); on a phone a table may scroll inside its own frame, except
  the tables built to stack into cards (class `lesa-stack`), which must fit.

Each page is loaded from a sibling copy with a small script appended that measures the layout after load and
writes it into the DOM as JSON; Chromium's --dump-dom returns it. Nothing is loaded from the network.
"""
from __future__ import annotations

import html as H
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no headless Chromium found for the book's screenshots: install it "
                            "(`apt-get install -y chromium` on Debian/Ubuntu) or run the check without --screenshots")


WIDTHS = {"desktop": 1280, "phone": 390}
# headless Chromium will not open a window narrower than this: a narrower width is laid out in an iframe of
# that width inside a wider window (media queries follow the iframe's viewport, as on a phone)
MIN_WINDOW = 500

# measured after load: the window, the page, the article's text column, and every table and content image
PROBE_JS = """<script>window.addEventListener('load', function () {
  var art = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
  var cs = getComputedStyle(art);
  var column = art.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  var out = {inner: window.innerWidth, page: document.documentElement.scrollWidth, column: column, tables: [], images: []};
  art.querySelectorAll('table').forEach(function (t, i) {
    var cap = t.querySelector('caption');
    out.tables.push({index: i + 1, width: t.scrollWidth, stack: t.classList.contains('lesa-stack'),
                     caption: cap ? cap.textContent.trim().slice(0, 50) : ''});
  });
  art.querySelectorAll('img').forEach(function (im, i) {
    out.images.push({index: i + 1, width: im.getBoundingClientRect().width, alt: (im.alt || '').slice(0, 50)});
  });
  if (window.parent !== window) { window.parent.postMessage(JSON.stringify(out), '*'); return; }
  var pre = document.createElement('pre'); pre.id = 'lesa-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""
# the narrow-window frame: the page in an iframe of the phone's width; the probe inside posts its measurement up
FRAME_HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{{margin:0}}iframe{{border:0;display:block}}</style>
</head><body><iframe src="{src}" width="{width}" height="{height}"></iframe><script>
window.addEventListener('message', function (e) {{
  var pre = document.createElement('pre'); pre.id = 'lesa-probe'; pre.textContent = e.data; document.body.appendChild(pre);
}});</script></body></html>"""


def framed(page: Path, width: int, height: int) -> Path:
    """A sibling file that shows `page` in an iframe `width` px wide (for widths below MIN_WINDOW)."""
    frame = page.with_name(f"_lesa_frame_{width}_{page.name}")
    frame.write_text(FRAME_HTML.format(src=page.name, width=width, height=height))
    return frame
_PROBE_OUT = re.compile(r'<pre id="lesa-probe"[^>]*>(.*?)</pre>', re.S)


def measure_page(page: Path, width: int, height: int = 2000) -> dict:
    """The layout of one built page at a window width, measured by PROBE_JS in headless Chromium."""
    page = Path(page)
    probe = page.with_name(f"_lesa_probe_{page.name}")       # beside the page: its relative links still resolve
    text = page.read_text(encoding="utf-8", errors="replace")
    probe.write_text(text.replace("</body>", PROBE_JS + "</body>") if "</body>" in text else text + PROBE_JS)
    frame = framed(probe, width, height) if width < MIN_WINDOW else None
    try:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={max(width, MIN_WINDOW)},{height}", "--virtual-time-budget=3000", "--dump-dom",
               (frame or probe).resolve().as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    finally:
        probe.unlink(missing_ok=True)
        if frame:
            frame.unlink(missing_ok=True)
    m = _PROBE_OUT.search(out)
    if not m:
        raise RuntimeError(f"Chromium returned no layout for {page} at {width} px (command: {' '.join(cmd)})")
    return json.loads(H.unescape(m[1]))


def layout_problems(m: dict, page: str, kind: str) -> list[str]:
    """What a layout measurement says is wrong, one line each (stable text before the parenthesis, so a known
    problem is recognised when the numbers move)."""
    problems, col = [], m["column"]
    if m["page"] > m["inner"] + 1:
        problems.append(f"{page}: the page is wider than the window at {kind} width ({m['page']} > {m['inner']} px)")
    for t in m["tables"]:
        if t["width"] > col + 2 and (kind == "desktop" or t["stack"]):
            what = f"table {t['index']}" + (f" ({t['caption']!r})" if t["caption"] else "")
            problems.append(f"{page}: {what} is wider than the text column at {kind} width "
                            f"({t['width']} > {col:.0f} px)")
    for im in m["images"]:
        if im["width"] > col + 2:
            problems.append(f"{page}: image {im['index']} is wider than the text column at {kind} width "
                            f"({im['width']:.0f} > {col:.0f} px)")
    return problems


def pages_at_widths(html_root: str | Path, pages: tuple[str, ...], problems: list[str],
                    missing: str) -> Iterator[tuple[str, Path, str, int]]:
    """(page, its .html file, width name, px) for each page (`book/intro`, ...) of a built site at each of WIDTHS:
    what the screenshots and the layout measurements both walk. A page that was not built is one line in
    ``problems``: ``missing`` formatted with ``page`` and ``html``."""
    root = Path(html_root)
    for page in pages:
        html = root / f"{page}.html"
        if not html.exists():
            problems.append(missing.format(page=page, html=html))
            continue
        for kind, width in WIDTHS.items():
            yield page, html, kind, width


def check_widths(html_root: str | Path, pages: tuple[str, ...]) -> list[str]:
    """layout_problems of each page (`book/intro`, ...) at desktop and phone width."""
    problems: list[str] = []
    for page, html, kind, width in pages_at_widths(html_root, pages, problems, "{page}: no page {html} to measure"):
        problems += layout_problems(measure_page(html, width), f"{page}.html", kind)
    return problems
