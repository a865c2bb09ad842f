"""What a published payload may be, and what it loses before anyone sees it (SPEC 5, 10).

`PayloadRules.clean` walks a payload once: it refuses what could not be delivered to every
client for as long as it is kept (deeper than `max_depth`, strings or lists longer than their
bounds, keys that are not strings, integers beyond 64 bits: JSON encoders refuse them), drops
the keys an operator strips (TICKWIRE_STRIP_FIELDS, at any depth) and replaces the values of
secret-named keys by `[REDACTED]` (at any depth). A payload that needs no change is returned
as it is.

`redact` does the redaction alone, for log records (any depth, no bounds); `mask_pii` masks
e-mail addresses and phone numbers in log text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tickwire.errors import TickwireError

REDACTED = "[REDACTED]"
# Keys are compared case-insensitively without `_`, `-`, `.` and spaces; a key that is or ends
# with one of these holds a secret (as providers name them: apiKey, APCA-API-SECRET-KEY,
# secretKey, sessionTokens, api.key, client_secret, pwd, passphrase...).
_SECRET_SUFFIXES = (
    "apikey",
    "token",
    "secret",
    "secretkey",
    "accesskey",
    "privatekey",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "authorization",
    "credential",
    "credentials",
    # Plural tokens of a kind ("tokens" alone is a count, as in an AI decision's usage).
    "sessiontokens",
    "accesstokens",
    "refreshtokens",
    "authtokens",
    "apitokens",
)
_FOLD = str.maketrans("", "", "_-. ")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+...) and North-American style groups; plain digit runs
# (ids, timestamps) are left alone.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def is_secret_key(key: str) -> bool:
    return key.lower().translate(_FOLD).endswith(_SECRET_SUFFIXES)


class PayloadError(TickwireError, ValueError):
    """A payload outside the bounds: the message says where and why (the pipeline answers it
    with a `PublishError`)."""


class PayloadRules:
    def __init__(
        self,
        *,
        max_depth: int = 32,
        max_string: int = 65_536,
        max_items: int = 10_000,
        strip: Iterable[str] = (),
    ) -> None:
        self.max_depth = max_depth
        self.max_string = max_string
        self.max_items = max_items
        self.strip = frozenset(strip)

    def clean(self, data: dict[str, Any]) -> dict[str, Any]:
        """The payload as it will be kept and delivered; raises PayloadError."""
        cleaned: dict[str, Any] = self._value(data, 1, "data")
        return cleaned

    def _value(self, value: Any, depth: int, where: str) -> Any:
        if isinstance(value, dict):
            return self._object(value, depth, where)
        if isinstance(value, list):
            return self._list(value, depth, where)
        if isinstance(value, str):
            if len(value) > self.max_string:
                raise PayloadError(
                    f"{where} is a string of {len(value)} characters: at most {self.max_string}"
                )
        elif isinstance(value, int) and not isinstance(value, bool) and not _INT_MIN <= value <= _INT_MAX:
            raise PayloadError(f"{where} is an integer beyond 64 bits: send it as a string")
        elif not (value is None or isinstance(value, bool | int | float)):
            raise PayloadError(f"{where} is a {type(value).__name__}: not a JSON value")
        return value

    def _object(self, value: dict[Any, Any], depth: int, where: str) -> dict[str, Any]:
        if depth > self.max_depth:
            raise PayloadError(f"{_short(where)} is nested deeper than {self.max_depth} levels")
        if len(value) > self.max_items:
            raise PayloadError(f"{where} has {len(value)} fields: at most {self.max_items}")
        out: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise PayloadError(f"{where} has a key that is not a string: {key!r:.40}")
            if key in self.strip:
                new: Any = _DROP
            elif is_secret_key(key):
                new = REDACTED
            else:
                new = self._value(item, depth + 1, f"{where}.{key[:40]}")
            if out is None and new is not item:
                out = dict(list(value.items())[:index])
            if out is not None and new is not _DROP:
                out[key] = new
        return value if out is None else out

    def _list(self, value: list[Any], depth: int, where: str) -> list[Any]:
        if depth > self.max_depth:
            raise PayloadError(f"{_short(where)} is nested deeper than {self.max_depth} levels")
        if len(value) > self.max_items:
            raise PayloadError(f"{where} has {len(value)} items: at most {self.max_items}")
        out: list[Any] | None = None
        for index, item in enumerate(value):
            new = self._value(item, depth + 1, f"{where}[{index}]")
            if out is None and new is not item:
                out = value[:index]
            if out is not None:
                out.append(new)
        return value if out is None else out


_DROP = object()


def _short(where: str, limit: int = 60) -> str:
    """A path in a message: its start and its end ("data.a.b...y.z")."""
    return where if len(where) <= limit else where[: limit // 2] + "..." + where[-limit // 2 :]


def redact(value: Any) -> Any:
    """A copy of `value` with secret-named keys' values replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else _redact_inner(v))
            for k, v in value.items()
        }
    return _redact_inner(value)


def _redact_inner(value: Any) -> Any:
    # Iterative below the top level: a log record may be nested without bound.
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        source, parent, slot = stack.pop()
        if isinstance(source, dict):
            copy: dict[Any, Any] = {}
            parent[slot] = copy
            for k, v in source.items():
                if isinstance(k, str) and is_secret_key(k):
                    copy[k] = REDACTED
                elif isinstance(v, dict | list):
                    copy[k] = None
                    stack.append((v, copy, k))
                else:
                    copy[k] = v
        else:
            items: list[Any] = list(source)
            parent[slot] = items
            for i, v in enumerate(items):
                if isinstance(v, dict | list):
                    stack.append((v, items, i))
    return root[0]


def mask_pii(text: str) -> str:
    """E-mail addresses and phone numbers masked, for log lines."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group(0))[-2:], text)
