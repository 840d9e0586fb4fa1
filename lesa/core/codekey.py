"""Cache keys from the code that computes a value, not from the files it happens to live in.

    code_key(costly_weights)                 # a lesa function (or class, lambda, partial)
    code_key(lambda: A.svd_evidence(m))      # a notebook's lambda: the lesa names it uses
    code_key(Path("notebooks/03_expansion.py"))   # a script: every lesa name it uses
    code_key(Keyed(lambda: f(x), f))         # a callable keyed by the code it names (f), not by where it sits

The key hashes the normalised source (ast.unparse: no comments, docstrings or line numbers) of every
top-level lesa definition reachable from the entries: functions, classes (all their methods) and
module-level assignments (tables, registries), following names through imports and re-exports,
`module.name` attributes, imports inside functions and registering decorators (a function decorated
with @layer_kind is reached from the KIND_FNS table the decorator fills). The hashes are sorted and
carry no module name, so moving a definition between modules, renaming a module or editing comments
leaves the key alone; changing reachable code changes it, and unrelated code never enters it.
Not seen: a lesa method called on an object whose class no reachable code names, and code reached by
getattr on a string. Same key in every process and machine for the same Python minor version.
"""
from __future__ import annotations

import ast
import copy
import functools
import hashlib
import types
from pathlib import Path
from typing import Any

LESA_DIR = Path(__file__).resolve().parents[1]          # the lesa package (this file is lesa/core/codekey.py)
MUTATORS = {"add", "append", "extend", "update", "setdefault", "insert"}   # calls that fill a registry


class _Module:
    """One parsed file: its top-level definitions (name -> statements) and what its names refer to."""

    def __init__(self, name: str, pkg: str, tree: ast.Module, modules: set[str]):
        self.name, self.pkg, self.modules = name, pkg, modules
        self.defs: dict[str, list[ast.stmt]] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}   # local name -> (module, name or None: the module)
        for st in tree.body:
            self._top(st)

    def _top(self, st: ast.stmt) -> None:
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            self.imports.update(self.import_names(st))
        elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs.setdefault(st.name, []).append(st)
        elif isinstance(st, (ast.If, ast.Try)) and not _is_main(st):
            for sub in [*st.body, *getattr(st, "orelse", []), *getattr(st, "finalbody", []),
                        *(s for h in getattr(st, "handlers", []) for s in h.body)]:
                self._top(sub)
        else:       # assignments and other statements belong to the module-level names they write or fill
            for name in sorted(_written(st)):
                self.defs.setdefault(name, []).append(st)

    def import_names(self, st: ast.Import | ast.ImportFrom) -> dict[str, tuple[str, str | None]]:
        out: dict[str, tuple[str, str | None]] = {}
        if isinstance(st, ast.Import):
            for a in st.names:
                if a.name.split(".")[0] in {m.split(".")[0] for m in self.modules}:
                    out[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
            return out
        base = st.module or ""
        if st.level:
            up = self.pkg.split(".")[: len(self.pkg.split(".")) - st.level + 1]
            base = ".".join(up + ([st.module] if st.module else []))
        if base not in self.modules:
            return out
        for a in st.names:
            sub = f"{base}.{a.name}"
            out[a.asname or a.name] = (sub, None) if sub in self.modules else (base, a.name)
        return out


def _is_main(st: ast.stmt) -> bool:
    return isinstance(st, ast.If) and "__main__" in ast.dump(st.test)


SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _walk(node: ast.AST):
    """ast.walk that does not enter nested scopes (their names are not the statement's)."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        todo.extend(c for c in ast.iter_child_nodes(n) if not isinstance(c, SCOPES))


def _written(st: ast.AST) -> set[str]:
    """Names a statement assigns, or fills by subscript or a mutating method call."""
    out = set()
    for n in _walk(st):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name):
            out.add(n.value.id)
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATORS
              and isinstance(n.func.value, ast.Name)):
            out.add(n.func.value.id)
    return out


class _Normalise(ast.NodeTransformer):
    """Drop docstrings, lesa imports and the module part of `module.name` (moving code changes none of them)."""

    def __init__(self, mod: _Module, index: "Index", local: dict):
        self.mod, self.index, self.local = mod, index, local

    def visit_FunctionDef(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_ImportFrom(self, node):       # a lesa import inside a function: what it binds is followed as a reference
        return None if self.mod.import_names(node) else node

    visit_Import = visit_ImportFrom

    def visit_Attribute(self, node):
        base = self.index.target(self.mod, node.value, self.local)
        if base and base[1] is None and self.index.target(self.mod, node, self.local):
            return ast.Name(id=node.attr, ctx=node.ctx)
        return self.generic_visit(node)


class Index:
    """Every module under a package folder, parsed once."""

    def __init__(self, root: Path):
        files = {p: _module_name(p, root) for p in sorted(root.rglob("*.py"))}
        names = set(files.values())
        self.mods = {}
        for p, name in files.items():
            pkg = name if p.name == "__init__.py" else name.rpartition(".")[0]
            self.mods[name] = _Module(name, pkg, ast.parse(p.read_text(encoding="utf-8")), names)
        self.refs = {d: self._refs(self.mods[d[0]], self.mods[d[0]].defs[d[1]]) for d in self.all_defs()}
        for d in self.all_defs():                  # a registering decorator: its table reaches what it decorates
            for st in self.mods[d[0]].defs[d[1]]:
                for dec in getattr(st, "decorator_list", []):
                    fn = self.target(self.mods[d[0]], dec.func if isinstance(dec, ast.Call) else dec, {})
                    for table in self._filled_tables(fn) if fn and fn[1] else ():
                        self.refs[table].add(d)

    def all_defs(self) -> list[tuple[str, str]]:
        return [(m, n) for m in sorted(self.mods) for n in sorted(self.mods[m].defs)]

    def resolve(self, module: str, name: str | None, seen: frozenset = frozenset()) -> tuple | None:
        """(module, name) of the definition a name refers to, following re-exports; (module, None): a module."""
        if name is None:
            return (module, None) if module in self.mods else None
        mod = self.mods.get(module)
        if mod is None or (module, name) in seen:
            return None
        if name in mod.defs:
            return module, name
        if name in mod.imports:
            return self.resolve(*mod.imports[name], seen | {(module, name)})
        return self.resolve(f"{module}.{name}", None)

    def target(self, mod: _Module, node: ast.AST, local: dict) -> tuple | None:
        """What a Name or a `module.name` chain refers to in lesa (None: a local or an outside name)."""
        if isinstance(node, ast.Name):
            if node.id in local:
                return self.resolve(*local[node.id])
            return self.resolve(mod.name, node.id)
        if isinstance(node, ast.Attribute):
            base = self.target(mod, node.value, local)
            if base and base[1] is None:
                return self.resolve(base[0], node.attr)
        return None

    def _refs(self, mod: _Module, stmts: list[ast.stmt]) -> set[tuple[str, str]]:
        local = _local_imports(mod, stmts)
        out = {self.resolve(*t) for t in local.values()}
        for st in stmts:
            out |= {self.target(mod, n, local) for n in ast.walk(st) if isinstance(n, (ast.Name, ast.Attribute))}
        return {t for t in out if t and t[1] is not None}

    def _filled_tables(self, fn: tuple[str, str]) -> set[tuple[str, str]]:
        mod = self.mods[fn[0]]
        names = set().union(*(_written(s) for st in mod.defs[fn[1]] for s in ast.walk(st) if isinstance(s, ast.stmt)))
        found = {self.resolve(mod.name, n) for n in names}          # a table defined there or imported there
        return {d for d in found if d and d[1] and d != fn
                and not isinstance(self.mods[d[0]].defs[d[1]][0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

    def closure(self, entries: set[tuple[str, str]]) -> set[tuple[str, str]]:
        seen, todo = set(), sorted(entries)
        while todo:
            d = todo.pop()
            if d not in seen and d[0] != __name__:         # the key's own code is not the computation
                seen.add(d)
                todo.extend(sorted(self.refs[d] - seen))
        return seen

    @functools.lru_cache(maxsize=None)
    def text(self, d: tuple[str, str]) -> str:
        mod = self.mods[d[0]]
        norm = _Normalise(mod, self, _local_imports(mod, mod.defs[d[1]]))
        return "\n".join(ast.unparse(norm.visit(copy.deepcopy(st))) for st in mod.defs[d[1]])

    def script_entries(self, path: Path) -> set[tuple[str, str]]:
        """The lesa definitions a script (a notebook's source) refers to."""
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        return self._refs(_Module("__main__", "", tree, set(self.mods)), tree.body)

    def object_entries(self, obj: Any, seen: set | None = None, home: str | None = None) -> set[tuple[str, str]]:
        """The lesa definitions behind a Python object: a lesa function or class is its top-level definition
        (a lambda inside a lesa function: that function); any other function (a notebook's lambda), the
        lesa names its code uses, and those of the functions of its own module that it uses."""
        seen = set() if seen is None else seen
        if id(obj) in seen:
            return set()
        seen.add(id(obj))
        if isinstance(obj, Keyed):
            return set().union(*(self.object_entries(o, seen, home) for o in obj.code))
        if isinstance(obj, functools.partial):
            return set().union(*(self.object_entries(o, seen, home) for o in (obj.func, *obj.args, *obj.keywords.values())))
        obj = obj.__func__ if isinstance(obj, types.MethodType) else obj
        if not isinstance(obj, (type, types.FunctionType)):        # data (models, configs, numbers): not code
            return set()
        module = obj.__module__ or ""
        if module in self.mods:
            d = self.resolve(module, obj.__qualname__.split(".")[0])
            return {d} if d and d[1] else set()
        if isinstance(obj, type) or module != (home or module):      # outside classes, other modules' code
            return set()
        out: set = set()
        codes, names = [obj.__code__], set()
        while codes:
            c = codes.pop()
            names |= set(c.co_names)
            codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        glob = obj.__globals__
        for n in sorted(names):
            v = glob.get(n)
            if isinstance(v, types.ModuleType) and v.__name__ in self.mods:
                out |= {d for a in names if (d := self.resolve(v.__name__, a)) and d[1]}
            elif v is not None:
                out |= self.object_entries(v, seen, module)
        for cell in obj.__closure__ or ():
            try:
                out |= self.object_entries(cell.cell_contents, seen, module)
            except ValueError:                      # an empty cell
                pass
        return out


class Keyed:
    """A callable whose code key is that of other entries: ``Keyed(lambda: f(x), f)`` is keyed by ``f`` alone, not
    by the lesa function the lambda sits in (lesa.study.common.cached_by_code)."""

    def __init__(self, fn: Any, *code: Any):
        self.fn, self.code = fn, code

    def __call__(self) -> Any:
        return self.fn()


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _local_imports(mod: _Module, stmts: list[ast.stmt]) -> dict:
    """Imports inside functions (wherever they sit): local name -> (module, name)."""
    out: dict = {}
    for st in stmts:
        for n in ast.walk(st):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                out.update(mod.import_names(n))
    return out


@functools.lru_cache(maxsize=8)
def _index(root: str, stamp: tuple) -> Index:
    return Index(Path(root))


def index(root: Path = LESA_DIR) -> Index:
    """The parsed package, re-read whenever one of its files changed."""
    files = sorted(Path(root).rglob("*.py"))
    return _index(str(root), tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))


def code_key(*entries: Any, root: Path = LESA_DIR) -> str:
    """Hash of the normalised source of every lesa definition reachable from the entries (Python objects,
    or a Path to a script whose lesa names are the entries)."""
    idx = index(root)
    start: set = set()
    for e in entries:
        start |= idx.script_entries(e) if isinstance(e, Path) else idx.object_entries(e)
    texts = sorted(hashlib.sha256(idx.text(d).encode()).hexdigest() for d in idx.closure(start))
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
