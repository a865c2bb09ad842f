"""Every exception tickwire defines is a `TickwireError`, so one `except` catches them all."""

from __future__ import annotations

import importlib
import pkgutil

import tickwire
from tickwire.core.sanitize import PayloadError
from tickwire.errors import TickwireError
from tickwire.upstream.state import IllegalTransition

# `python -m tickwire` runs the command line when imported.
NOT_IMPORTED = {"tickwire.__main__"}


def import_every_module() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(tickwire.__path__, "tickwire.")
        if info.name not in NOT_IMPORTED
    ]
    for name in names:
        importlib.import_module(name)
    return names


def subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    pending = [root]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def test_every_tickwire_exception_is_a_tickwire_error() -> None:
    modules = import_every_module()
    ours = {cls for cls in subclasses(BaseException) if cls.__module__.split(".")[0] == "tickwire"}
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}" for cls in ours if not issubclass(cls, TickwireError)
    )
    assert outside == []
    # The walk reached the whole package: its modules and their exceptions.
    assert len(modules) > 100
    assert {cls.__module__ for cls in ours} >= {
        "tickwire.errors",
        "tickwire.upstream.model",
        "tickwire.client.errors",
    }


def test_builtin_second_bases_are_kept_for_callers_that_catch_them() -> None:
    """Code that catches the builtin (ValueError for bad input, RuntimeError for a bug) still
    catches these."""
    assert issubclass(PayloadError, ValueError)
    assert issubclass(IllegalTransition, RuntimeError)
