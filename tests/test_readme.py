"""Every command in the README and in the book's "Grow your own model" page is valid: quick ones run,
long ones are dry-run or checked for flags; shell variables they set (MODEL=$(...)) are set by running
the line; the Python blocks run (with a tiny model standing in for SmolLM2) or, where they need a
trained checkpoint and the benchmark data, every call is checked against the function's signature."""
import ast
import importlib
import inspect
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "book/grow.md")
ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")
VAR = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)\}?")


def doc_commands(doc: str) -> list[str]:
    text = (ROOT / doc).read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)


COMMANDS = {doc: doc_commands(doc) for doc in DOCS}
CASES = [(doc, i) for doc in DOCS for i in range(len(COMMANDS[doc]))]
_ASSIGNED: dict[tuple[str, str], str] = {}


def _here(line: str) -> str:
    """The project's entry points as this checkout's code (the .venv scripts may point at another clone)."""
    entry = {"lesa": f"{sys.executable} -m lesa.grow.cli ", "python": f"{sys.executable} "}
    return re.sub(r"(?<![\w/])\.venv/bin/(lesa|python) ", lambda m: entry[m[1]], line)


def shell_vars(doc: str, upto: int) -> dict[str, str]:
    """The variables set by the assignment lines before command `upto` of a doc, each line run in bash."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    found = {}
    for cmd in COMMANDS[doc][:upto]:
        m = ASSIGN.match(cmd)
        if not m:
            continue
        if (doc, cmd) not in _ASSIGNED:
            out = subprocess.run(["bash", "-c", f'set -e\n{_here(cmd)}\nprintf %s "${m[1]}"'], cwd=ROOT, env=env,
                                 capture_output=True, text=True)
            assert out.returncode == 0 and out.stdout.strip(), f"{cmd}: {out.stderr[-2000:]}"
            _ASSIGNED[(doc, cmd)] = out.stdout.strip()
        env[m[1]] = found[m[1]] = _ASSIGNED[(doc, cmd)]
    return found


def test_readme_opens_with_the_two_commands():
    assert COMMANDS["README.md"][:2] == ["make replicate", "make test"]


def test_grow_page_covers_every_step():
    text = (ROOT / "book" / "grow.md").read_text()
    for needle in ("lesa plan", "lesa expand", "--method lesa", "--method llama_pro", "--method solar",
                   "--gaps", "--after", "--layers", "build_plan", "apply_plan", "-m lesa.train",
                   "accelerate launch --config_file configs/accelerate/", "-m lesa.eval.evaluate", "evaluate_suite"):
        assert needle in text, needle


@pytest.mark.parametrize("doc,idx", CASES, ids=[f"{d}:{COMMANDS[d][i][:70]}" for d, i in CASES])
def test_doc_command_is_valid(doc, idx, tmp_path):
    cmd = COMMANDS[doc][idx]
    variables = shell_vars(doc, idx + 1)                      # runs this line too if it is an assignment
    if ASSIGN.match(cmd):
        return
    unknown = [v for v in VAR.findall(cmd) if v not in variables]
    assert not unknown, f"{cmd}: uses {unknown}, set by no earlier command of {doc}"
    argv = shlex.split(VAR.sub(lambda m: variables[m[1]], cmd))
    if argv[0] == "make":
        targets = [a for a in argv[1:] if "=" not in a]
        assert subprocess.run(["make", "-n", *targets], cwd=ROOT, capture_output=True).returncode == 0, cmd
        return
    if argv[0] in ("accelerate", ".venv/bin/accelerate"):
        assert argv[1] == "launch", cmd
        cfg = argv[argv.index("--config_file") + 1]
        assert (ROOT / cfg).exists(), cfg
        module = argv[argv.index("-m") + 1]
        launcher = Path(sys.executable).parent / "accelerate"
        out = subprocess.run([str(launcher), "launch", "--help"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        for flag in (a for a in argv[2:argv.index("-m")] if a.startswith("--")):
            assert flag in out.stdout, f"{flag} not accepted by accelerate launch"
        argv = [sys.executable, "-m", module] + argv[argv.index("-m") + 2:]
    if argv[0] == ".venv/bin/lesa":
        argv = [sys.executable, "-m", "lesa.grow.cli", *argv[1:]]
    elif argv[0] == ".venv/bin/python":
        argv = [sys.executable, *argv[1:]]
    sub = argv[3] if argv[2] == "lesa.grow.cli" else None
    if sub in ("plan", "model"):                             # cheap: run it for real
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip(), out.stderr
        assert sub != "plan" or "->" in out.stdout
    elif sub == "expand":
        out = subprocess.run(argv + ["--dry-run"], cwd=ROOT, capture_output=True, text=True)
        if "/path/to/" in cmd:                               # placeholder path: must fail clearly, no traceback
            assert out.returncode == 2 and "Traceback" not in out.stderr
        else:
            assert out.returncode == 0 and "layers" in out.stdout, out.stderr
    else:                                                    # long jobs: every flag must exist
        module_argv = argv[:3] + ([argv[3]] if argv[2] in ("lesa.book", "lesa.book.run", "lesa.bench", "lesa.bench.run", "lesa.study.profiles") else [])
        out = subprocess.run(module_argv + ["--help"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        for flag in (a.split("=")[0] for a in argv if a.startswith("--")):
            assert flag in out.stdout, f"{flag} not accepted by {' '.join(module_argv)}"


def _run_block(code: str, model, tmp_path, monkeypatch, name: str) -> None:
    """Run a doc's Python block as a script, `lesa.load_model` returning `model` (no tokenizer)."""
    import lesa

    monkeypatch.setattr(lesa, "load_model", lambda *a, **k: (model, None), raising=False)
    monkeypatch.chdir(tmp_path)
    code = re.sub(r"from lesa import load_model, ", "from lesa import ", code)
    script = tmp_path / f"{name}.py"
    script.write_text("import lesa\nload_model = lesa.load_model\n" + code.replace("epochs=10", "epochs=1"))
    runpy.run_path(str(script))                               # the doc's own text, run as a script


def test_readme_python_example_runs_as_written(tiny_llama, tmp_path, monkeypatch):
    """The README's Python block, with the tiny model standing in for SmolLM2 (same code path)."""
    block = python_blocks("README.md")[0]
    assert "load_model(\"smollm2-135m\")" in block
    _run_block(block, tiny_llama, tmp_path, monkeypatch, "readme_example")
    assert (tmp_path / "runs" / "lesa-45" / "config.json").exists()


def test_grow_page_python_grows_with_each_method(tmp_path, monkeypatch):
    """The grow page's Python block on a tiny random Llama with SmolLM2's depth (30 layers), so every
    plan of the block (depths, gaps, positions) is the one a reader gets."""
    import json

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=30, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, tie_word_embeddings=True)
    block = python_blocks("book/grow.md")[0]
    assert "load_model(\"smollm2-135m\")" in block
    _run_block(block, LlamaForCausalLM(cfg).eval(), tmp_path, monkeypatch, "grow_example")
    depths = {p.name: json.loads((p / "config.json").read_text())["num_hidden_layers"]
              for p in (tmp_path / "runs").iterdir()}
    assert depths == {"py-lesa-45": 45, "py-lesa-40-spread": 40, "py-llama_pro-36": 36, "py-solar-48": 48}


def _check_calls(code: str) -> int:
    """Import what the block imports and bind every call of an imported function to its signature."""
    tree = ast.parse(code)
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = importlib.import_module(node.module)
            for a in node.names:
                names[a.asname or a.name] = getattr(mod, a.name)
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            fn = names[node.func.id]
            inspect.signature(fn).bind(*[None] * len(node.args), **{k.arg: None for k in node.keywords})
            n += 1
    return n


def test_grow_page_python_evaluation_calls_are_valid():
    """The evaluation block needs a trained checkpoint and the benchmark data; its imports resolve and
    every call matches the signature of the function it calls (running them is tested elsewhere)."""
    block = python_blocks("book/grow.md")[1]
    assert "evaluate_suite" in block and "load_trained_weights" in block
    assert _check_calls(block) == 3
