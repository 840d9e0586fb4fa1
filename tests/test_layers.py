"""Subpackages in layers (lesa.LAYERS: a lower one never imports a higher one) and no import circle among lesa's
modules, counting imports inside functions too: a function-level import
hides a circle from Python but not from a reader (or from the next refactor that moves it to the top).
Imports under `if TYPE_CHECKING:` (annotations only) are not counted."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from lesa import LAYERS

LESA = Path(__file__).resolve().parents[1] / "lesa"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def walk_runtime(tree: ast.AST):
    """ast.walk without the bodies of `if TYPE_CHECKING:` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def lesa_imports(root: Path = LESA) -> dict[str, set[str]]:
    """{module: lesa modules it imports anywhere in its file}. `from .x import y` counts as importing x, and
    lesa.x.y too when y is a submodule; `from . import x` imports x."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    out: dict[str, set[str]] = {}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in walk_runtime(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in files}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                deps |= {base} & files.keys()
                deps |= {f"{base}.{a.name}" for a in node.names} & files.keys()
        deps.discard(mod)
        deps.discard(root.name)                 # the package's __init__ is not a layer of its own
        out[mod] = deps
    return out


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, in sorted order: reproducible)."""
    state: dict[str, int] = {}              # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_circle():
    graph = lesa_imports()
    assert len(graph) > 40 and "lesa.core.store" in graph["lesa.grow.expand"]      # the scan sees lesa's imports
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_circle_finder_sees_a_function_level_import(tmp_path):
    """The check itself: a circle closed by an import inside a function is found and printed."""
    pkg = tmp_path / "lesa"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("from . import c\n\ndef g():\n    return c\n")
    (pkg / "c.py").write_text("def h():\n    from .a import f\n    return f\n")
    graph = lesa_imports(pkg)
    assert graph == {"lesa": set(), "lesa.a": {"lesa.b"}, "lesa.b": {"lesa.c"}, "lesa.c": {"lesa.a"}}
    assert find_circle(graph) == ["lesa.a", "lesa.b", "lesa.c", "lesa.a"]
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    assert find_circle(lesa_imports(pkg)) is None


def upward_imports(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Every import of a module in a higher layer (lesa.<layer>...) than the importing module's, as 'a -> b'."""
    def rank(mod: str) -> int | None:
        parts = mod.split(".")
        return layers.index(parts[1]) if len(parts) > 1 and parts[1] in layers else None

    out = []
    for mod, deps in sorted(graph.items()):
        for d in sorted(deps):
            if rank(mod) is not None and rank(d) is not None and rank(d) > rank(mod):
                out.append(f"{mod} -> {d}")
    return out


def test_every_module_sits_in_a_layer_and_imports_only_lower_ones():
    files = sorted(LESA.rglob("*.py"))
    loose = [p.name for p in files if p.parent == LESA and p.name != "__init__.py"]
    assert loose == [], f"modules outside the subpackages: {loose}"
    assert sorted(p.name for p in LESA.iterdir() if (p / "__init__.py").exists()) == sorted(LAYERS)
    for layer in LAYERS:                       # each says what it owns and what it may import
        doc = ast.get_docstring(ast.parse((LESA / layer / "__init__.py").read_text()))
        assert doc and f"Layer {LAYERS.index(layer)}" in doc, layer
    assert upward_imports(lesa_imports()) == []


def test_layer_check_sees_an_upward_import(tmp_path):
    """The check itself: a low layer importing a high one, even inside a function, is reported."""
    pkg = tmp_path / "lesa"
    for layer in ("low", "high"):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "high" / "b.py").write_text("from ..low.a import f\n")
    (pkg / "low" / "a.py").write_text("def f():\n    return 1\n")
    assert upward_imports(lesa_imports(pkg), ("low", "high")) == []
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n    return b\n")
    assert upward_imports(lesa_imports(pkg), ("low", "high")) == ["lesa.low.a -> lesa.high", "lesa.low.a -> lesa.high.b"]


def test_the_install_lists_every_subpackage():
    """pyproject.toml names each package folder (setuptools installs only those: a missing one breaks a
    non-editable install while every test here still imports it from the checkout)."""
    import tomllib

    listed = set(tomllib.loads((LESA.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(LESA.parent).parts) for p in LESA.rglob("__init__.py")}
    assert listed == folders


def test_the_readme_layout_lists_every_subpackage_once_in_layer_order():
    """The README's layout table has one row per subpackage, in lesa.LAYERS order (it says each row imports only
    the rows above it), and names no folder that is not one."""
    readme = (LESA.parent / "README.md").read_text()
    rows = re.findall(r"^\| `lesa/(\w+)/` \|", readme, flags=re.M)
    folders = {p.parent.name for p in LESA.glob("*/__init__.py")}
    assert rows == list(LAYERS) and set(rows) == folders
