"""The reader checks of the built book (lesa.book.check) on constructed HTML: each defect is found,
its fixed version passes. Also the table helper, number formats and provenance labels the book
prints. Seconds, no model."""
from __future__ import annotations

import json

import pytest

from lesa.book import check as bc
from lesa.grow.methods import METHODS, color, label, method_id
from lesa.grow.methods import display_name, run_label
from lesa.plots.table import fmt_num, table
from lesa.core.store import commit_label, hardware_label


def page(body: str) -> str:
    """A page shaped like the theme's: navigation outside the article, content inside."""
    return (f"<html><body><nav><img src='_static/logo.png'></nav><main><article class='bd-article'>{body}"
            "</article></main></body></html>")


def output(text: str) -> str:
    return f"<div class='cell_output docutils container'><div class='output stream'><pre>{text}</pre></div></div>"


FIG_OK = ("<figure class='align-default' id='fig-x'><img alt='Loss against tokens for four methods' "
          "src='../../_images/abc123.png'/><figcaption><p><span class='caption-number'>Figure 3 </span>"
          "<span class='caption-text'>Loss.</span></p></figcaption></figure>")


@pytest.mark.parametrize("bad, good, needle", [
    ("<p>| claim | verdict |\n|---|---|\n| C1 | ok |</p>",
     "<table><tr><td>C1</td></tr></table>", "raw Markdown table"),
    ("<p>| claim | verdict |\n|\u2014|\u2014|\n| C1 | ok |</p>",          # smartquotes turned --- into em dashes
     "<p>a | b and 1 - 2</p>", "raw Markdown table"),
    (output("[data] benchmarks cached at .cache/data/x\nvalue 3"), output("value 3"), "log line"),
    (output("  [eval] piqa 40 examples"), output("eval of [data] in prose"), "log line"),
    (output("100%|\u2588\u2588\u2588\u2588| 30/30 [00:03<00:00, 9.1it/s]"), output("30 of 30 done"), "progress bar"),
    (output("PosixPath('results/cpu/x.json')"), output("results/cpu/x.json"), "stray repr"),
    (output("&lt;Figure size 690x300 with 2 Axes&gt;"), output("Figure 2 shows"), "stray repr"),
    ("<img alt='Loss curves' src='../../_images/abc123.png'/>", FIG_OK, "not a figure with a caption"),
    ("<figure><img alt='Loss curves' src='../../_images/abc123.png'/><figcaption><p>Loss.</p></figcaption></figure>",
     FIG_OK, "no number"),
    (FIG_OK.replace("Loss against tokens for four methods", "../../_images/abc123.png"), FIG_OK, "alt text"),
    (FIG_OK.replace("Loss against tokens for four methods", ""), FIG_OK, "alt text"),
    (FIG_OK.replace("Loss against tokens for four methods", "results/cpu/04_cpt_curves/figures/loss.png"), FIG_OK,
     "alt text"),
    # a figure cell whose only output was text: the text becomes a numbered figure without an image
    ("<figure id='fig-s'><p>Not yet run: the two runs.</p><figcaption><p><span class='caption-number'>Figure 29 "
     "</span><span class='caption-text'>The spectrum test.</span></p></figcaption></figure>",
     "<p>Not yet run: the two runs.</p>" + FIG_OK, "figure without an image"),
    # equations typeset by MathJax from a CDN stay raw TeX offline; scripts and stylesheets must be the book's own
    ("<script defer src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'></script>",
     "<script defer src='../_static/mathjax/tex-svg.js'></script>", "from the network"),
    ("<script src='//cdn.example.org/x.js'></script>", "<a href='https://arxiv.org/abs/2502.13794'>paper</a>",
     "from the network"),
    ("<link rel='stylesheet' href='https://fonts.example.org/a.css'/>",
     "<link rel='stylesheet' href='../_static/lesa.css'/>", "from the network"),
])
def test_each_defect_is_found_and_its_fix_passes(bad, good, needle):
    found = bc.check_html(page(bad), "p.html")
    assert any(needle in f for f in found), found
    assert all(f.startswith("p.html: ") for f in found)
    assert bc.check_html(page(good), "p.html") == []


def test_theme_chrome_and_code_are_not_checked():
    # images outside the article (logo), and log-like text in code cells (not outputs) are fine
    html = page("<div class='cell_input'><pre>print('[data] x')</pre></div>" + FIG_OK)
    assert bc.check_html(html) == []


def test_check_site_reads_pages_and_skips_theme_files(tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "macros.html").write_text(page("<p>|---|---|</p>"))        # a template, not a page
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "a.html").write_text(page(FIG_OK))
    assert bc.check_site(tmp_path) == []
    (tmp_path / "book" / "b.html").write_text(page(output("[lesa] growing")))
    assert bc.check_site(tmp_path) == ["book/b.html: log line in an output: '[lesa] growing'"]


def test_blank_screenshot_is_detected(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 3))
    fig.savefig(tmp_path / "blank.png")
    assert "one colour" in bc.blank_reason(tmp_path / "blank.png")
    fig.text(0.05, 0.5, "Claims scoreboard " * 3, fontsize=30)
    fig.text(0.05, 0.2, "reproduced 3, not reproduced 8", fontsize=30)
    fig.savefig(tmp_path / "text.png")
    plt.close(fig)
    assert bc.blank_reason(tmp_path / "text.png") is None


def test_screenshots_and_layout_walk_the_same_pages_at_the_same_widths(tmp_path, monkeypatch):
    """One page/width iterator (check_layout.pages_at_widths) serves the screenshots and the layout measurements:
    both visit each built page at 1280 and 390 px, in order, and name a page that was not built once."""
    from lesa.book import check_layout as bl

    (tmp_path / "book").mkdir()
    for name in ("a", "c"):
        (tmp_path / "book" / f"{name}.html").write_text(page(FIG_OK))
    pages = ("book/a", "book/b", "book/c")
    shot, measured = [], []

    def fake_shot(html, out, width, height=2000):
        shot.append((html.stem, width))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"")
        return out

    monkeypatch.setattr(bc, "screenshot", fake_shot)
    monkeypatch.setattr(bc, "blank_reason", lambda png: None)
    monkeypatch.setattr(bl, "measure_page", lambda html, width: measured.append((html.stem, width))
                        or {"inner": width, "page": width, "column": width, "tables": [], "images": []})
    files, problems = bc.screenshots(tmp_path, tmp_path / "shots", pages)
    assert shot == [("a", 1280), ("a", 390), ("c", 1280), ("c", 390)]
    assert [f.name for f in files] == ["book_a-desktop.png", "book_a-phone.png", "book_c-desktop.png", "book_c-phone.png"]
    assert problems == [f"screenshot: no page {tmp_path / 'book' / 'b.html'}"]
    assert bl.check_widths(tmp_path, pages) == [f"book/b: no page {tmp_path / 'book' / 'b.html'} to measure"]
    assert measured == shot


# ------------------------------------------------------------------------------ what the book prints
def test_numbers_have_one_format():
    assert fmt_num(61.46) == "61.5" and fmt_num(37.86) == "37.9" and fmt_num(0.000123) == "1.23e-4"
    assert fmt_num(874810.0) == "8.75e5" and fmt_num(30720) == "30,720" and fmt_num(None) == "–"
    assert fmt_num(5e-5, sci=True) == "5e-5" and fmt_num(0.0, sci=True) == "0"
    assert fmt_num(float("nan")) == "–" and fmt_num(True) == "yes"


def test_table_keeps_every_row_formats_lambda_and_writes_the_csv(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"lambda": [0.0, 5e-5, 5e-4], "norm ratio": [0.11234, 0.61, 0.929],
                       "ppl": [61.46, 37.86, 874810.0]})
    df = pd.concat([df] * 30, ignore_index=True)                      # 90 rows: pandas would truncate
    t = table(df, csv=tmp_path / "t.csv")
    h = t._repr_html_()
    assert h.count("<tr>") == 91 and "..." not in h
    assert ">5e-5<" in h and ">5e-4<" in h and ">0<" in h and "0.0000" not in h
    assert ">61.5<" in h and ">8.75e5<" in h and "e+" not in h
    assert "data:text/csv;base64," in h and 'download="t.csv"' in h
    rows = (tmp_path / "t.csv").read_text().splitlines()
    assert rows[0] == "lambda,norm ratio,ppl" and len(rows) == 91 and rows[2].startswith("5e-05,0.61,")
    md = table([{"method": "LESA", "ppl": 45.63}], digits=2).markdown()
    assert md.splitlines() == ["| method | ppl |", "|---|---|", "| LESA | 46 |"]


def test_a_long_table_folds_under_one_line_and_links_the_rows_behind_it(tmp_path):
    import pandas as pd

    (tmp_path / "per_seed.csv").write_text("method,seed,ppl\nLESA,0,40\nLESA,1,42\n")
    t = table(pd.DataFrame({"method": ["LESA"], "ppl": ["41 [40, 42]"]}), caption="Table 2. Perplexity.",
              collapsed="Every model and seed (Table 2)", download=tmp_path / "per_seed.csv")
    h = t._repr_html_()
    assert h.startswith('<details class="lesa-table-more"><summary>Every model and seed (Table 2)</summary>')
    assert h.endswith("</details>") and "<caption>Table 2. Perplexity.</caption>" in h
    assert 'download="per_seed.csv"' in h and "LESA,1,42" not in h               # linked (base64), not shown
    assert "<details" not in table(pd.DataFrame({"a": [1]}))._repr_html_()        # open unless asked
    assert t.markdown().splitlines()[0] == "| method | ppl |"                     # plain Jupyter: the table itself


def test_one_name_and_colour_per_method():
    for name in ("lesa", "LESA", "LESA-6k", "lesa-unfrozen"):
        assert method_id(name) == "lesa" and color(name) == METHODS["lesa"][1]
    for name in ("llama_pro", "LLaMA Pro", "LLaMA Pro-6k"):
        assert method_id(name) == "llama_pro"
    assert label("llama_pro") == "LLaMA Pro" and label("Base (8B)") == METHODS["base"][0]
    assert run_label("lesa", frozen=False) == "LESA, all layers trained"
    assert "unfrozen" not in run_label("base", frozen=False)          # was "base (not expanded) (unfrozen)"
    assert display_name("lesa-unfrozen") == "LESA, all layers trained" and display_name("LESA-3k") == "LESA-3k"
    assert len({m.color for m in METHODS.values()}) == len(METHODS)    # no two methods share a colour


def _cielab(hex_colour):
    """CIE L*a*b* (D65) of an sRGB colour: Euclidean distances in it follow perceived differences."""
    import matplotlib.colors as mc
    import numpy as np
    rgb = np.array(mc.to_rgb(hex_colour))
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    f = lambda t: np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    fx, fy, fz = f(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)])


def test_method_colours_are_told_apart():
    # distinct hex codes are not enough: the random control was once #2B7BA8 beside LLaMA Pro's #0072B2
    # (distance 12) in chapter 6's curves. 20 CIELAB units: clearly different side by side
    import itertools
    import numpy as np
    dist = {(a, b): float(np.linalg.norm(_cielab(ca) - _cielab(cb)))
            for (a, ma), (b, mb) in itertools.combinations(METHODS.items(), 2) for ca, cb in [(ma.color, mb.color)]}
    close = {pair: round(d, 1) for pair, d in dist.items() if d < 20}
    assert not close, close
    assert np.linalg.norm(_cielab("#2B7BA8") - _cielab(METHODS["llama_pro"][1])) < 20    # the test can fail


def test_commit_and_hardware_labels():
    assert commit_label({"commit": "0123456789abcdef"}) == "`0123456789`"
    # a run that only rewrote result files ran committed code: no dirty mark is recorded at all
    assert commit_label({"commit": "0123456789abcdef-dirty", "dirty_files": ["lesa/train/trainer.py"]}) == \
        "`0123456789` with edits to `lesa/train/trainer.py`"
    assert "not recorded" in commit_label("0123456789abcdef-dirty")          # old records: say what is known
    assert "uncommitted" not in commit_label("0123456789abcdef-dirty")
    hw = {"machine": "x86_64", "cpu_model": "AMD EPYC 7B13", "cpus": 2, "torch_threads": 2}
    assert hardware_label(hw) == "AMD EPYC 7B13, 2 cores, 2 torch threads"
    assert "model not recorded" in hardware_label({"machine": "x86_64", "cpus": 2})


def test_provenance_names_only_files_that_affect_results(monkeypatch):
    from lesa.core import store

    status = " M results/cpu/scoreboard.json\n M book/intro.md\n M lesa/plots/figures.py\n"
    monkeypatch.setattr(store, "_git", lambda *a: "abc\n" if a[0] == "rev-parse" else status)
    assert store.git_state() == ("abc", ["lesa/plots/figures.py"])
    status = " M results/cpu/scoreboard.json\n"
    assert store.git_state() == ("abc", []) and store.git_commit() == "abc"
    prov = store.provenance()
    assert prov["commit"] == "abc" and prov["dirty_files"] == [] and prov["hardware"]["cpu_model"]
    json.dumps(prov)


def test_the_books_mathjax_is_vendored():
    """_config.yml points MathJax at a file the book ships (book/_static), which the build copies."""
    import yaml

    from lesa import PROJECT_ROOT
    cfg = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert not bc.REMOTE.match(cfg["mathjax_path"])
    js = PROJECT_ROOT / cfg["html_static_path"][0] / cfg["mathjax_path"]
    assert js.stat().st_size > 1_000_000 and b"MathJax" in js.read_bytes()[:2_000_000]
