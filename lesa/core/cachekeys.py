"""The code part of every costly cache key, to show that moving code re-runs nothing.

    python -m lesa.core.cachekeys > before.json     # ... move, rename, refactor ...
    python -m lesa.core.cachekeys | diff before.json -

Each cache is keyed by its inputs (weights, configs, data: unaffected by a refactor) and by the code that
computes it (lesa.core.codekey). This prints that code part for every cached stage: growth (expand's costly
weights), the SVD factors (lesa/grow/svd.py's bytes), the perplexity screens (measure), the predictor study's
three caches, the notebooks' own cached_json lambdas (rebuilt from each notebook's imports and functions)
and each notebook's reach (its book stamp's "lesa" part). Definitions are found by name anywhere in the
package, so the same command runs before and after a move. Identical output: every cache still hits.
"""
from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path

from .codekey import LESA_DIR, code_key, index
from .. import PROJECT_ROOT
from .store import file_hash

NB_DIR = PROJECT_ROOT / "notebooks"


def find(name: str, root: Path = LESA_DIR):
    """The one lesa function or class called ``name``, wherever it lives (a clear error if not exactly one)."""
    idx = index(root)
    hits = [m for m in sorted(idx.mods) if name in idx.mods[m].defs
            and isinstance(idx.mods[m].defs[name][0], (ast.FunctionDef, ast.ClassDef))]
    if len(hits) != 1:
        raise LookupError(f"{name}: defined in {hits or 'no module'}; expected exactly one lesa module")
    return getattr(importlib.import_module(hits[0]), name)


def notebook_lambdas(path: Path) -> list[str]:
    """code_key of every lambda a notebook passes to cached_json, in source order. The lambda is rebuilt in a
    namespace holding the notebook's imports and function definitions (what its code can reach); names bound to
    data there are data in the notebook too, and data is not code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ns: dict = {"__name__": "__nb__"}
    defs = [st for st in tree.body if isinstance(st, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), ns)
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "cached_json"
                and len(node.args) >= 3 and isinstance(node.args[2], ast.Lambda)):
            lam = node.args[2]              # its defaults (the notebook's data) become None: data is not code
            lam = ast.Lambda(args=ast.arguments(posonlyargs=[], args=lam.args.args, kwonlyargs=[], kw_defaults=[],
                                                defaults=[ast.Constant(None) for _ in lam.args.defaults]), body=lam.body)
            fn = eval(compile(ast.Expression(body=ast.fix_missing_locations(ast.copy_location(lam, node))),
                              str(path), "eval"), ns)
            out.append(f"{node.args[0].value}: {code_key(fn)}")
    return out


def keys() -> dict:
    """{stage: key} for every cached stage (see the module docstring). A notebook's cached lambdas are named by
    their cache; notebook 3's evaluation cache is keyed where it is computed: by its lambda while the notebook
    held the experiment, by the module's CODE (the functions it calls) since lesa.study.expansion does."""
    out = {"grow (costly_weights)": code_key(find("costly_weights")),
           "factors (svd.py bytes)": file_hash(next(LESA_DIR.rglob("svd.py"))),
           "ppl_protocol (measure)": code_key(find("measure")),
           "pred_full/pred_loo/pred_loo_controls (predictor_study)": code_key(find("predictor_study"))}
    lambdas = {}
    for nb in sorted(NB_DIR.glob("0*.py")):
        for k in notebook_lambdas(nb):
            name, key = k.split(": ")
            lambdas.setdefault(name, set()).add(key)
    try:
        driver = importlib.import_module(find("run_expansion").__module__)
        lambdas.setdefault("expansion_eval", set()).add(code_key(*driver.CODE))
    except LookupError:                     # before the redesign: notebook 3's lambda (found above)
        pass
    for name, ks in sorted(lambdas.items()):
        out[f"{name} (cached_json)"] = " ".join(sorted(ks))      # one key per cache: two would be a split cache
    for nb in sorted(NB_DIR.glob("0*.py")):
        out[f"{nb.stem}: reach"] = code_key(nb)
    return out


def changed(recorded: dict, now: dict) -> list[str]:
    """The costly stages whose key differs from a recorded set (the notebooks' reach aside: a notebook whose file
    changed runs again anyway, and reads every cache above)."""
    return [f"{k}: {recorded.get(k)} -> {now.get(k)}" for k in sorted(set(recorded) | set(now))
            if not k.endswith(": reach") and recorded.get(k) != now.get(k)]


if __name__ == "__main__":
    now = keys()
    if len(sys.argv) > 2 and sys.argv[1] == "--against":       # python -m lesa.core.cachekeys --against FILE
        diff = changed(json.loads(Path(sys.argv[2]).read_text()), now)
        print("\n".join(diff) or "every costly cache key is unchanged")
        sys.exit(1 if diff else 0)
    json.dump(now, sys.stdout, indent=1)
    sys.stdout.write("\n")
