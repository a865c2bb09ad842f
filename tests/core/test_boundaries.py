"""The core stays free of I/O (no asyncio, nor sockets) and of the trading domain."""

from __future__ import annotations

import ast
import re
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


# Words of the trading domain: the core speaks of logs, keys, ticks and streams only (the
# catalogue that gives them trading meanings is domain/catalog.py). Docstrings and comments
# may use them as examples; code and strings may not.
DOMAIN_WORDS = frozenset(
    [
        "order",
        "orders",
        "fill",
        "fills",
        "price",
        "prices",
        "symbol",
        "symbols",
        "strategy",
        "strategies",
        "portfolio",
        "alert",
        "alerts",
        "trade",
        "trades",
        "trading",
        "totalvalue",
        "pnl",
    ]
)


def _tokens(word: str) -> list[str]:
    """`totalValue` -> total, value, totalvalue; `price:update` -> price, update."""
    parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", word)
    return [p.lower() for p in parts] + [re.sub(r"[^a-z]", "", word.lower())]


def _code_words(tree: ast.AST) -> list[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.append(node.id)
        elif isinstance(node, ast.Attribute):
            words.append(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            words.append(node.name)
        elif isinstance(node, ast.arg):
            words.append(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.append(node.value)
    return words


def test_core_code_has_no_domain_words() -> None:
    root = Path(tickwire.core.__file__).parent
    found = [
        f"{path.name}: {word!r}"
        for path in sorted(root.rglob("*.py"))
        for word in _code_words(ast.parse(path.read_text()))
        if DOMAIN_WORDS.intersection(_tokens(word))
    ]
    assert found == []
