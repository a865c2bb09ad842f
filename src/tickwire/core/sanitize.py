"""Redaction of secrets in payloads and masking of personal data in logs (SPEC 5)."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
_SECRET_SUFFIXES = (
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "credential",
    "credentials",
    "privatekey",
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+...) and North-American style groups; plain digit runs
# (ids, timestamps) are left alone.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)


def is_secret_key(key: str) -> bool:
    folded = key.lower().replace("_", "").replace("-", "")
    return folded.endswith(_SECRET_SUFFIXES)


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with secret-named keys' values replaced, at any depth."""
    if _depth > 64:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, _depth + 1) for v in value]
    return value


def needs_redaction(value: Any, _depth: int = 0) -> bool:
    """Cheap check so clean payloads (the common case) are not copied."""
    if _depth > 64:
        return False
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k):
                return True
            if isinstance(v, dict | list) and needs_redaction(v, _depth + 1):
                return True
        return False
    if isinstance(value, list):
        return any(isinstance(v, dict | list) and needs_redaction(v, _depth + 1) for v in value)
    return False


def sanitize(data: dict[str, Any]) -> dict[str, Any]:
    return redact(data) if needs_redaction(data) else data


def mask_pii(text: str) -> str:
    """E-mail addresses and phone numbers masked, for log lines."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group(0))[-2:], text)
