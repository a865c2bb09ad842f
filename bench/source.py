"""The code a command measures: a snapshot of src/ (or of `--src DIR`) taken when the command starts,
so that every scenario runs the same code even while the sources are being edited, and the line that
names it (git describe of its checkout, its path and the digest of the copy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from procs import ROOT

DEFAULT_SRC = ROOT / "src"


def snapshot_src(src: Path, dest: Path) -> Path:
    """Copy `src` to `dest`/src (without caches) and return the copy."""
    target = dest / "src"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def src_digest(src: Path) -> str:
    """A digest of the Python sources under `src` (what a run measures, committed or not)."""
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def source_id(src: Path, digest: str) -> str:
    """`git describe --dirty` of the checkout that holds `src` (when there is a commit), the path of
    `src` relative to this checkout (`src/`, or e.g. `../baseline/src/` with --src) and the digest."""
    label = os.path.relpath(src.resolve(), ROOT) + "/"
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=src, capture_output=True, text=True, check=False
    )
    described = done.stdout.strip() if done.returncode == 0 else ""
    return (
        f"git {described}, {label} sha256 {digest}" if described else f"{label} sha256 {digest} (no commit)"
    )
