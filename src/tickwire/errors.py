"""The exception tree of tickwire.

TickwireError
├── ConfigError        invalid configuration (file, env, flags): says which key and why
├── PublishError       an event that cannot be published (HTTP 400); nothing was stamped
├── BrokerUnavailable  the broker cannot be reached (HTTP 503 on publish)
└── StreamError        a stream request that cannot be served (HTTP status + message)
"""

from __future__ import annotations


class TickwireError(Exception):
    """Root of every error tickwire raises on purpose."""


class ConfigError(TickwireError, ValueError):
    pass


class PublishError(TickwireError, ValueError):
    """`message` says what is wrong, `index` which item of a batch (None for a single)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message if index is None else f"item {index}: {message}")
        self.index = index


class BrokerUnavailable(TickwireError):
    """The broker cannot be reached: publishing fails loudly (503)."""


class StreamError(TickwireError):
    """A stream request that cannot be served: HTTP status and client message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


__all__ = ["BrokerUnavailable", "ConfigError", "PublishError", "StreamError", "TickwireError"]
