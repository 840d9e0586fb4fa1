"""lesa.core.codekey: a cache key follows the code that computes the value, not the files it lives in."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lesa.study import analysis as A
from lesa.study.growth import residual_effect
from lesa.core.codekey import LESA_DIR, code_key
from lesa.core.store import stable_hash
from lesa.study.common import cached_by_code, cached_json
from lesa.grow.expand import code_hash, costly_weights
from lesa.eval.protocol import measure

TOY = {
    "__init__.py": "",
    "a.py": '''"""Module doc."""
SCALE = 2.0


def entry(x):
    """Doc."""
    from .b import helper      # a function-level import: its module part is not code either

    return helper(x) * SCALE   # a comment


def unrelated(x):
    return x + 1
''',
    "b.py": '''REG = {}


def register(name):
    def deco(fn):
        REG[name] = fn
        return fn
    return deco


def helper(x):
    return sum(REG[k](x) for k in sorted(REG))


@register("double")
def _double(x):
    return 2 * x
''',
}
SCRIPT = "from toy.a import entry\nfrom toy import b as B\n\nprint(entry(1), B.REG)\n"


def toy(tmp_path: Path, files: dict[str, str]) -> str:
    """The key of SCRIPT's lesa-side code in a fresh copy of the toy package."""
    root = tmp_path / "toy"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    (tmp_path / "script.py").write_text(SCRIPT)
    return code_key(tmp_path / "script.py", root=root)


def edited(files: dict, name: str, old: str, new: str) -> dict:
    assert old in files[name]
    return {**files, name: files[name].replace(old, new)}


def test_toy_key_follows_the_computation_not_its_place(tmp_path):
    base = toy(tmp_path, TOY)
    # comments and docstrings are not code
    assert toy(tmp_path, edited(TOY, "a.py", '"""Doc."""', '"""Another doc."""')) == base
    assert toy(tmp_path, edited(TOY, "a.py", "# a comment", "# reworded")) == base
    # unreachable code, and a new module nobody uses
    assert toy(tmp_path, edited(TOY, "a.py", "return x + 1", "return x + 2")) == base
    assert toy(tmp_path, {**TOY, "c.py": "def other():\n    return 3\n"}) == base
    # a reachable constant, a reachable function, a function reached only through the registry it fills
    assert toy(tmp_path, edited(TOY, "a.py", "SCALE = 2.0", "SCALE = 3.0")) != base
    assert toy(tmp_path, edited(TOY, "b.py", "sorted(REG)", "REG")) != base
    assert toy(tmp_path, edited(TOY, "b.py", "return 2 * x", "return 3 * x")) != base


def test_toy_key_survives_moving_and_renaming_modules(tmp_path):
    base = toy(tmp_path, TOY)
    helper = "\n\ndef helper(x):\n    return sum(REG[k](x) for k in sorted(REG))\n"
    # helper moves to a new module c; a imports it from there
    moved = edited(TOY, "b.py", helper, "")
    moved = edited(moved, "a.py", "from .b import helper", "from .c import helper")
    moved["c.py"] = "from .b import REG\n" + helper
    assert toy(tmp_path, moved) == base
    # ... and is called as `c.helper` (the module part of an attribute is not code either)
    attr = edited(moved, "a.py", "from .c import helper", "from . import c")
    attr = edited(attr, "a.py", "return helper(x)", "return c.helper(x)")
    assert toy(tmp_path, attr) == base
    # module b renamed to registry (the script imports it under its new name)
    renamed = {("registry.py" if k == "b.py" else k): v.replace("from .b import", "from .registry import")
               for k, v in moved.items()}
    root = tmp_path / "toy"
    shutil.rmtree(root)
    root.mkdir()
    for name, text in renamed.items():
        (root / name).write_text(text)
    (tmp_path / "script.py").write_text(SCRIPT.replace("from toy import b as B", "from toy import registry as B"))
    assert code_key(tmp_path / "script.py", root=root) == base
    # the moved function still counts: changing it changes the key
    (root / "c.py").write_text(renamed["c.py"].replace("sorted(REG)", "REG"))
    assert code_key(tmp_path / "script.py", root=root) != base


def lesa_copy(tmp_path: Path) -> Path:
    root = tmp_path / "lesa"
    shutil.copytree(LESA_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.md"))
    (tmp_path / "grow.py").write_text("from lesa.grow.expand import costly_weights\n\ncostly_weights\n")
    (tmp_path / "ppl.py").write_text("from lesa.eval.protocol import measure\n\nmeasure\n")
    return root


def test_growth_and_perplexity_keys_read_their_own_code_only(tmp_path):
    root = lesa_copy(tmp_path)
    script = tmp_path / "grow.py"
    base = code_key(script, root=root)
    assert base == code_hash() == code_key(costly_weights)        # a script naming it = the function itself
    with open(root / "book" / "run.py", "a") as f:                        # the book is not growth code
        f.write("\n\ndef extra():\n    return 1\n")
    (root / "book" / "run.py").write_text((root / "book" / "run.py").read_text().replace('"lesa": code_key', '"lesa2": code_key'))
    (root / "plots" / "style.py").write_text((root / "plots" / "style.py").read_text() + "\nX = 1\n")
    # stable_hash moves from store to a module of its own (store re-exports it): same key
    store = (root / "core" / "store.py").read_text()
    start, end = store.index("def stable_hash"), store.index("def file_hash")
    (root / "core" / "hashing.py").write_text("import hashlib\nimport json\nfrom typing import Any\n\n\n" + store[start:end])
    (root / "core" / "store.py").write_text(store[:start] + store[end:] + "\nfrom .hashing import stable_hash  # noqa: E402\n")
    assert code_key(script, root=root) == base
    # a constant inside the SVD the predictors train on: a different growth key, the same perplexity key
    ppl = code_key(tmp_path / "ppl.py", root=root)
    assert ppl == code_key(measure) != base
    svd = (root / "grow" / "svd.py").read_text()
    assert "1e-" in svd
    (root / "grow" / "svd.py").write_text(svd.replace("1e-", "2e-", 1))
    assert code_key(script, root=root) != base
    assert code_key(tmp_path / "ppl.py", root=root) == ppl
    # ... and the perplexity code changes the perplexity key
    (root / "eval" / "scoring.py").write_text((root / "eval" / "scoring.py").read_text() + "\nMAX_LOGITS = 1\n")
    assert code_key(tmp_path / "ppl.py", root=root) != ppl


def test_a_lambda_is_keyed_by_the_lesa_code_it_calls():
    # a notebook's cached_json lambda: the functions it reaches through a module alias or a name
    assert code_key(lambda: A.svd_evidence(None, [], 0, 0, 0, 0)) == code_key(A.svd_evidence)
    assert code_key(lambda: costly_weights(None, None, None)) == code_key(costly_weights)
    assert code_key(lambda: A.svd_evidence(None)) != code_key(lambda: residual_effect(None, None))
    # a helper of the caller's own module is followed; data is not code
    assert code_key(lambda: _helper()) == code_key(costly_weights)
    assert code_key(lambda: 1) == code_key(lambda: [2])


def _helper():
    return costly_weights(None, None, None)


def test_cached_by_code_is_cached_json_keyed_by_the_named_code(tmp_path, monkeypatch):
    """Both caches name their file stable_hash([key, code]) as before the two shared one body: code_key(fn) for
    cached_json, code_key(*code) for cached_by_code (not the code of the lambda, which calls something else)."""
    monkeypatch.setenv("LESA_CACHE", str(tmp_path))
    calls = []
    fn = lambda: calls.append(1) or {"v": stable_hash(1)}        # noqa: E731 (reaches stable_hash, not residual_effect)
    key = {"model": "m", "name": "base"}
    assert code_key(fn) != code_key(residual_effect)
    assert cached_by_code("t_code", key, (residual_effect,), fn) == {"v": stable_hash(1)}
    assert [p.name for p in (tmp_path / "analysis" / "t_code").iterdir()] == \
        [f"{stable_hash([key, code_key(residual_effect)])}.json"]
    assert cached_json("t_fn", key, fn) == {"v": stable_hash(1)}
    assert [p.name for p in (tmp_path / "analysis" / "t_fn").iterdir()] == [f"{stable_hash([key, code_key(fn)])}.json"]
    assert cached_by_code("t_code", key, (residual_effect,), fn) == cached_json("t_fn", key, fn)
    assert len(calls) == 2                                       # each computed once, then read back
    # the arguments swapped (code where the key goes) once keyed every model's entry by the code alone: an error now
    with pytest.raises(TypeError, match="code must be a tuple of lesa functions"):
        cached_by_code("t_code", (residual_effect,), key, fn)
    # two keys, two entries (the bug gave every model the first one's)
    assert cached_by_code("t_code", {**key, "name": "other"}, (residual_effect,), lambda: {"v": 2}) == {"v": 2}


@pytest.mark.parametrize("seed", ["1", "2"])
def test_key_is_the_same_in_another_process(seed):
    nb = LESA_DIR.parent / "notebooks" / "03_expansion.py"
    code = "from pathlib import Path; from lesa.core.codekey import code_key; print(code_key(Path(%r)))" % str(nb)
    env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(LESA_DIR.parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    assert out.stdout.strip() == code_key(nb)
