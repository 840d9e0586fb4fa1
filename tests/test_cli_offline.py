"""Your own model, offline: a hub id (model) or hub dataset that cannot be fetched gives a clear message
saying what to do instead (exit code 2 from the CLI), never a stack trace."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lesa.data import corpus
from lesa.core import models
from lesa.grow.cli import main

ROOT = Path(__file__).resolve().parents[1]
HUB_ID = "some-org/some-model"
WIKI = {"fetch": {"kind": "hf", "path": "wikimedia/wikipedia", "name": "20231101.en", "split": "train"},
        "reader": "hf", "text_field": "text", "licence": "CC-BY-SA-3.0", "weight": 1.0}


def _cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-m", "lesa.grow.cli", *args], cwd=ROOT, capture_output=True, text=True, env=e)


@pytest.mark.parametrize("args", [
    ["plan", "--model", HUB_ID, "--layers", "48"],
    ["expand", "--model", HUB_ID, "--method", "lesa", "--layers", "48", "--out", "OUT"],
    ["expand", "--model", HUB_ID, "--method", "solar", "--out", "OUT", "--dry-run"],
])
def test_cli_hub_id_offline_is_exit_2_with_advice(args, tmp_path):
    out = _cli([a.replace("OUT", str(tmp_path / "grown")) for a in args])
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: "), out.stderr
    assert "hub is offline" in out.stderr and "local Hugging Face model folder" in out.stderr
    assert "HF_HUB_OFFLINE=0" in out.stderr
    assert not (tmp_path / "grown").exists()


@pytest.mark.parametrize("var,value", [("HF_HUB_OFFLINE", "1"), ("HF_HUB_OFFLINE", "true"),
                                       ("TRANSFORMERS_OFFLINE", "YES")])
def test_load_model_hub_id_offline(monkeypatch, var, value):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv(var, value)
    with pytest.raises(models.ModelNotFound, match="hub is offline") as e:
        models.load_model(HUB_ID)
    assert f"{var}={value}" in str(e.value) and "HF_HUB_OFFLINE=0" in str(e.value)


def test_gaps_take_a_named_placement(capsys):
    """--gaps spread / top (lesa.grow.plans.PLACEMENTS) besides gap numbers; a name mixed with numbers is refused."""
    assert main(["plan", "--source-layers", "30", "--method", "lesa_fp", "--alpha", "0", "--gaps", "spread"]) == 0
    out = capsys.readouterr().out
    assert "15 new at [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43]" in out
    assert "predict(0,1, alpha=0.0)" in out and "predict(28,29, alpha=0.0)" in out and "predict(1,2," not in out
    assert main(["plan", "--source-layers", "30", "--gaps", "spread", "3"]) == 2
    assert "one placement name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plan", "--source-layers", "30", "--gaps", "evenly"])
    assert "neither a gap number nor a placement" in capsys.readouterr().err


def test_missing_local_folder_is_named(tmp_path, capsys):
    assert main(["plan", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(tmp_path / "nope") in err


def test_unreachable_hub_without_offline_flag(monkeypatch, capsys):
    """No network, but HF_HUB_OFFLINE not set: transformers' OSError becomes the same clear error."""
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")

    def unreachable(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your connection.")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", unreachable)
    with pytest.raises(models.ModelNotFound, match="could not fetch 'some-org/some-model'.*couldn't connect"):
        models.load_config(HUB_ID)
    assert main(["expand", "--model", HUB_ID, "--out", "unused", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "couldn't connect" in err and "local Hugging Face model folder" in err


def test_weights_key_of_a_hub_id_uses_the_cached_snapshot(tiny_llama, tmp_path, monkeypatch):
    import transformers.utils

    tiny_llama.save_pretrained(tmp_path / "snapshot")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    monkeypatch.setattr(transformers.utils, "cached_file", lambda repo, f: str(tmp_path / "snapshot" / f))
    key = models.weights_key("org/tiny")
    assert key.startswith("tiny-") and key == models.weights_key("org/tiny")


def test_hub_dataset_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(corpus.SourceMissing, match="hub dataset 'wikimedia/wikipedia'.*offline") as e:
        corpus.build_corpus(None, config={"sources": {"wikipedia": WIKI}}, out_dir=tmp_path / "c")  # before tokenising
    assert "make data HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0" in str(e.value) and "data_files" in str(e.value)
    with pytest.raises(corpus.SourceMissing, match="offline"):
        next(corpus.iter_documents("wikipedia", WIKI))
    local = {"kind": "hf", "path": "json", "data_files": "docs.jsonl"}
    assert corpus.hf_source_problem("mine", local) is None            # local files need no network


def test_unreachable_hub_dataset_without_offline_flag(monkeypatch):
    import datasets

    for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(v, "0")

    def unreachable(*a, **k):
        raise ConnectionError("Couldn't reach 'wikimedia/wikipedia' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(corpus.SourceMissing, match="could not reach the Hugging Face hub dataset"):
        next(corpus.iter_documents("wikipedia", WIKI))


@pytest.mark.parametrize("module,args", [
    ("lesa.train.trainer", ["--model", "runs/no-such-model", "--shards", "x", "--out", "y"]),
    ("lesa.train.trainer", ["--model", "some-org/some-model", "--shards", "x", "--out", "y"]),
    ("lesa.study.profiles", ["check", "no-such-profile"]),
    ("lesa.book.run", ["build", "--profile", "no-such-profile"]),
])
def test_module_entry_points_give_one_line_errors(module, args):
    """Every `python -m lesa.<module>` turns our own errors into one line and exit code 2."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: "), out.stderr[-2000:]
