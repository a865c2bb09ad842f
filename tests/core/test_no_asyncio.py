"""The core must stay free of I/O: no asyncio (nor sockets) anywhere in tickwire.core."""

from __future__ import annotations

import ast
from pathlib import Path

import tickwire.core

FORBIDDEN = {"asyncio", "socket", "selectors", "threading", "uvicorn", "starlette"}


def test_core_imports_no_io_modules() -> None:
    root = Path(tickwire.core.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(root.glob("*.py"))) > 5  # the check looked at the real package
