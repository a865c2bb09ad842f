"""Structured JSON logs; every line about a connection carries its correlation id.

Messages and fields are passed through PII masking (e-mail, phone) and secret
redaction before they are written.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

from tickwire.core.sanitize import mask_pii, redact

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        text = orjson.dumps(redact(entry), default=str).decode()
        return mask_pii(text)


JSONFormatter.converter = __import__("time").gmtime


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger("tickwire")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
