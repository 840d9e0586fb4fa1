"""Paths, atomic writes, content-hash caching and provenance.

Everything expensive in `lesa` is keyed by a hash of its inputs and written atomically, so an
interrupted run never leaves a half-written file and a rerun reuses what is already done.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import PROJECT_ROOT     # the checkout: defined at the package root (lesa/__init__.py), whatever moves


def cache_dir(*parts: str) -> Path:
    """Project-local cache (``$LESA_CACHE`` or ``<checkout>/.cache``; ``~/.cache/lesa`` when installed)."""
    env = os.environ.get("LESA_CACHE")
    if env:
        base = Path(env)
    elif (PROJECT_ROOT / "Makefile").exists():
        base = PROJECT_ROOT / ".cache"
    else:
        base = Path.home() / ".cache" / "lesa"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shown(path: str | Path) -> str:
    """A path as printed to users and executed notebooks: relative to the checkout when inside it
    (no machine-specific prefixes in published outputs)."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def stable_hash(obj: Any, n: int = 16) -> str:
    """Hash of a JSON-able object (sorted keys), used as a cache key."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_hash(path: str | Path, n: int = 16, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:n]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


# Tracked paths whose edits can change a result. Result files, the book's pages and docs are rewritten
# by the runs themselves, so a tree that differs only there still ran the committed code.
RESULT_INPUTS = ("lesa/", "configs/", "notebooks/", "data/", "pyproject.toml", "requirements.txt",
                 "requirements-data.txt", "Makefile")


def _git(*args: str) -> str | None:
    out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    return out.stdout if out.returncode == 0 else None


def git_state() -> tuple[str | None, list[str]]:
    """(HEAD commit, tracked files differing from it that could affect a result: RESULT_INPUTS)."""
    try:
        head = _git("rev-parse", "HEAD")
        if head is None:
            return None, []
        status = _git("status", "--porcelain", "--untracked-files=no") or ""
        changed = [line[3:].split(" -> ")[-1].strip() for line in status.splitlines() if len(line) > 3]
        return head.strip(), sorted(p for p in changed if p.startswith(RESULT_INPUTS))
    except (OSError, subprocess.SubprocessError):
        return None, []


def git_commit() -> str | None:
    """HEAD, with "-dirty" only when files that could change a result differ from it."""
    head, dirty = git_state()
    return None if head is None else head + ("-dirty" if dirty else "")


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity set (``taskset -c 0`` gives 1), not the machine's count,
    so that a job pinned to one core does not start a worker per core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):             # not Linux
        return os.cpu_count() or 1


def available_gib() -> float | None:
    """MemAvailable of this machine in GiB (Linux), None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def peak_rss_gib() -> dict:
    """Peak resident memory so far (GiB): this process, and its largest finished child (worker processes)."""
    kib = lambda who: resource.getrusage(who).ru_maxrss / 2**20           # Linux reports KiB
    return {"process": round(kib(resource.RUSAGE_SELF), 2), "largest_child": round(kib(resource.RUSAGE_CHILDREN), 2)}


def provenance() -> dict:
    """Who/what/where produced a result: commit, package versions, hardware."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "accelerate", "lm_eval", "datasets", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    hw: dict[str, Any] = {"machine": platform.machine(), "cpu_model": cpu_model(), "cpus": os.cpu_count()}
    try:
        import torch

        hw["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            hw["gpu"] = torch.cuda.get_device_name(0)
            hw["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    head, dirty = git_state()
    return {
        "commit": None if head is None else head + ("-dirty" if dirty else ""),
        "dirty_files": dirty,                      # edited files that could affect this result
        "python": sys.version.split()[0],
        "versions": versions,
        "hardware": hw,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def commit_label(c: str | dict | None, dirty_files: list[str] | None = None) -> str:
    """A result's commit as printed in the book: the short hash, and the edited files when the working
    tree differed from it in files that could affect the result. `c` is a provenance record or its
    commit string. Records written before the edited files were recorded flag any difference,
    including the result files a run rewrites itself, so they only say that the tree differed."""
    if isinstance(c, dict):
        c, dirty_files = c.get("commit"), c.get("dirty_files", dirty_files)
    if not c:
        return "-"
    short = f"`{c.removesuffix('-dirty')[:10]}`"
    if not c.endswith("-dirty"):
        return short
    if dirty_files is None:
        return f"{short} (tree differed; files not recorded)"
    if not dirty_files:
        return short
    more = f" and {len(dirty_files) - 3} more" if len(dirty_files) > 3 else ""
    shown_files = ", ".join(f"`{f}`" for f in dirty_files[:3]) + more
    return f"{short} with edits to {shown_files}"


def hardware_label(h: dict | None) -> str:
    """A provenance hardware record as printed in the book: CPU model and core count, threads, GPUs."""
    if not h:
        return "-"
    cpu = h.get("cpu_model") or f"{h.get('machine') or '?'} CPU (model not recorded)"
    parts = [f"{cpu}, {h.get('cpus', '?')} cores"]
    if h.get("torch_threads"):
        parts.append(f"{h['torch_threads']} torch threads")
    if h.get("gpu"):
        parts.append(f"{h.get('gpu_count', 1)}× {h['gpu']}")
    return ", ".join(parts)


def run_main(main: Any, argv: list[str] | None = None, user_errors: tuple[type, ...] = ()) -> int:
    """Entry point of every ``python -m lesa.<module>``: our own errors (bad input, missing data or
    model, impossible plan) carry the fix in their message, so they print as one line and exit 2
    instead of a traceback. LESA_DEBUG=1 re-raises them."""
    try:
        out = main(argv)
        return out if isinstance(out, int) else 0
    except (ValueError, FileNotFoundError, *user_errors) as e:
        if os.environ.get("LESA_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
