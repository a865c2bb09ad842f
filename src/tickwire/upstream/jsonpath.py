"""A small JSONPath subset for the generic `json` adapter's field mapping.

    $                the document
    $.a.b  $['a']    a field
    $.list[0]        an item (negative counts from the end)
    $.list[*]  $.*   every item of a list, every value of an object

`compile_path` checks a path once (the configuration is refused when it is wrong);
`find` returns every match in document order, `first` the first one or None.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z_$][\w$-]*)|\.\*|\[(?P<index>-?\d+)\]|\[\*\]|\[['"](?P<quoted>[^'"]*)['"]\]"""
)
WILDCARD = object()

Step = str | int | object
Path = tuple[Step, ...]


def compile_path(path: str) -> Path:
    if not path.startswith("$"):
        raise ValueError(f"a path starts with `$`: {path!r}")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise ValueError(f"cannot read {path!r} at {path[pos:]!r}")
        if match.group("name") is not None:
            steps.append(match.group("name"))
        elif match.group("index") is not None:
            steps.append(int(match.group("index")))
        elif match.group("quoted") is not None:
            steps.append(match.group("quoted"))
        else:
            steps.append(WILDCARD)
        pos = match.end()
    return tuple(steps)


def find(path: Path, document: Any) -> list[Any]:
    current = [document]
    for step in path:
        found: list[Any] = []
        for value in current:
            if step is WILDCARD:
                if isinstance(value, list):
                    found.extend(value)
                elif isinstance(value, dict):
                    found.extend(value.values())
            elif isinstance(step, str):
                if isinstance(value, dict) and step in value:
                    found.append(value[step])
            elif isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
                found.append(value[step])
        current = found
    return current


def first(path: Path, document: Any) -> Any:
    found = find(path, document)
    return found[0] if found else None
