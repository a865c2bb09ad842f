"""The wheel carries the browser SDK: `/tickwire.js` and `/tickwire-react.js` are served from
the installed package (server/assets.py), so a wheel without them serves 404s.

The wheel is built from a copy of the project (pyproject.toml, README.md, src/) so the build
leaves no `build/` nor `*.egg-info` in the work tree, with the venv's setuptools and no
network (`--no-build-isolation --no-index`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILT_JS = ("tickwire/static/tickwire.js", "tickwire/static/tickwire-react.js")


def build_wheel(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    command += ["--disable-pip-version-check", "--quiet", "--wheel-dir", str(out), str(project)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("tickwire-*.whl")
    return wheel


def test_the_wheel_ships_the_built_browser_sdk(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = set(wheel.namelist())
        for name in BUILT_JS:
            assert name in names, sorted(n for n in names if not n.endswith(".py"))
            assert wheel.read(name) == (ROOT / "src" / name).read_bytes()  # the committed build
        assert "tickwire/py.typed" in names
