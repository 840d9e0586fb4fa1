"""The reader checks of issue 40 on small HTML pages: identifiers of the code in prose, images of tables,
figures never cited, the layout in headless Chromium (when installed) and the known-problems ratchet."""
import shutil

import pytest

from lesa.book import run as book
from lesa.book.check_layout import layout_problems, measure_page
from lesa.book.check_reader import figure_problems, identifier_problems


def page(body: str) -> str:
    return f'<html><body><nav><p>results/cpu/x.json in the navigation</p></nav><article class="bd-article">{body}' \
           "</article></body></html>"


@pytest.mark.parametrize("prose, what", [
    ("<p>set <code>expansion.seeded</code> to three seeds</p>", "a config key"),
    ("<p>the predictor {'hidden': 256, 'depth': 2} trains fast</p>", "a dict repr"),
    ("<li>the run <code>lesa_fp-0-p0</code> ends lower</li>", "a run id"),
    ("<td>llama_pro-seed2</td>", "a run id"),
    ("<p>read <code>results/cpu/verdicts/04.json</code></p>", "a path"),
    ("<p>the control <code>random_zero_out</code> starts at the base</p>", "a snake_case identifier"),
    ("<figcaption><p>shown as soon as those runs have trained</p></figcaption>", "build-time wording"),
])
def test_identifiers_in_prose_are_found(prose, what):
    found = identifier_problems(page(prose), "p.html")
    assert len(found) == 1 and f"{what} in prose" in found[0], found


def test_plain_prose_commands_math_and_code_blocks_pass():
    good = page("<p>LESA, LLaMA Pro and ARC-Easy, e.g. a top-1 row; see papernotes.org; run "
                "<code>python -m lesa.book build</code>.</p>"
                '<p>the row <span class="math notranslate">\\(V_{i-1}\\), W_o_proj</span> of layer i</p>'
                '<div class="highlight"><pre>cfg = {"hidden": 256}; results/cpu/x.json; lesa_fp-0-p0</pre></div>'
                "<p>First sentence.</p><p>Next sentence.</p>")
    assert identifier_problems(good, "p.html") == []


def test_images_of_tables_and_uncited_figures_are_found():
    fig = ('<figure id="fig-a"><img alt="{alt}" src="_images/a.png"><figcaption><p><span class="caption-number">'
           'Figure 3 </span><span class="caption-text">{cap}</span></p></figcaption></figure>')
    uncited = page(fig.format(alt="Dot chart of perplexity", cap="Perplexity by model; the paper's main table."))
    assert figure_problems(uncited, "c.html") == ["c.html: Figure 3 is never cited in the text"]
    cited = page("<p>As Figure 3 shows, LESA starts high.</p>" + fig.format(alt="Dot chart", cap="Perplexity."))
    assert figure_problems(cited, "c.html") == []
    numref = page('<p>See <a href="#fig-a"><span class="std std-numref">Figure 3</span></a>.</p>'
                  + fig.format(alt="Dot chart", cap="Perplexity."))
    assert figure_problems(numref, "c.html") == []
    # text pieces of a paragraph can abut ("...Figure 4Figure 3...") in the parser: still a citation of each
    abut = page('<p>as <a><span>Figure 4</span></a><a><span>Figure 3</span></a></p>' + fig.format(alt="Dot chart", cap="x"))
    assert figure_problems(abut, "c.html") == []
    table = page("<p>Figure 3 lists them.</p>" + fig.format(alt="Table of the 15 claims with verdicts", cap="Claims."))
    assert [p for p in figure_problems(table, "c.html") if "an image of a table" in p]
    # a caption citing its own figure is not a citation in the text
    self_cite = page(fig.format(alt="Dot chart", cap="Figure 3 again."))
    assert figure_problems(self_cite, "c.html") == ["c.html: Figure 3 is never cited in the text"]


def test_layout_problems_read_a_measurement():
    m = {"inner": 390, "page": 520, "column": 358,
         "tables": [{"index": 1, "width": 900, "stack": False, "caption": ""},
                    {"index": 2, "width": 400, "stack": True, "caption": "Table 1. Claims"}],
         "images": [{"index": 1, "width": 300, "alt": "x"}]}
    phone = layout_problems(m, "p.html", "phone")
    assert any("page is wider than the window at phone width" in p for p in phone)
    assert any("table 2 ('Table 1. Claims') is wider" in p for p in phone)      # a stacking table must fit
    assert not any("table 1" in p for p in phone)                                 # others scroll in their frame
    desktop = layout_problems({**m, "inner": 1280, "page": 1280, "column": 688}, "p.html", "desktop")
    assert desktop == ["p.html: table 1 is wider than the text column at desktop width (900 > 688 px)"]


@pytest.mark.skipif(not any(shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome")),
                    reason="needs a headless Chromium")
def test_chromium_measures_a_wide_table_and_a_phone_width(tmp_path):
    wide = "".join(f"<td>column{i}-{'x' * 12}</td>" for i in range(14))
    html = tmp_path / "p.html"
    html.write_text('<html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
                    '<article class="bd-article" style="max-width:600px"><p>text</p>'
                    f"<table><tr>{wide}</tr></table></article></body></html>")
    desk = measure_page(html, 1280)
    assert desk["inner"] == 1280 and desk["tables"][0]["width"] > desk["column"]
    assert any("table 1 is wider" in p for p in layout_problems(desk, "p.html", "desktop"))
    phone = measure_page(html, 390)                                   # below Chromium's narrowest window: framed
    assert phone["inner"] == 390 and phone["page"] > 390           # the table widens the whole page
    assert not list(tmp_path.glob("_lesa_*"))                      # the probe copies are cleaned up


def test_known_problems_are_reported_new_ones_fail(tmp_path):
    known = tmp_path / "known.txt"
    known.write_text("# pages waiting for their rewrite\n"
                     "c.html: Figure 3 is never cited in the text\n"
                     "c.html: table 1 is wider than the text column at desktop width (1137 > 676 px)\n"
                     "gone.html: a run id in prose: 'x-p0' in 'the run x-p0'\n")
    found = ["c.html: Figure 3 is never cited in the text",
             "c.html: table 1 is wider than the text column at desktop width (1140 > 688 px)",   # numbers moved
             "c.html: Figure 4 is never cited in the text"]
    new, old, gone = book.known_split(found, known)
    assert new == ["c.html: Figure 4 is never cited in the text"] and len(old) == 2
    assert gone == ["gone.html: a run id in prose: 'x-p0'"]
