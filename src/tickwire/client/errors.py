"""The client's exceptions, under the one tickwire root.

TickwireError
└── ClientError             anything the client raises on purpose
    ├── ClientClosed        the client was closed: `events()` ends, no more events
    ├── StreamRefused       the server refused a stream for good (401, 403, 404, 400, close
    │                       4001 / 1008 / 4029): reconnecting would not help; fix the request
    ├── RetriesExhausted    `max_attempts` connection attempts in a row failed
    ├── QueueClosed         `get()` on a closed, drained delivery queue
    ├── IllegalTransition   a state change the client's table does not allow (a bug)
    └── TransportError      one connection attempt or session failed; the client retries
        ├── StaleConnection no bytes (events or keepalives) for `stale_timeout_s`
        └── AuthExpired     the token expired (`auth:expired`) or, with a token provider,
                            was refused (401, close 4001): reconnect with a fresh token

`TransportError.retry_after` carries a server's `Retry-After` (429, 503) so the next attempt
waits at least that long.
"""

from __future__ import annotations

from tickwire.errors import TickwireError


class ClientError(TickwireError):
    """Root of the client's errors."""


class ClientClosed(ClientError):
    """The client is closed."""


class StreamRefused(ClientError):
    """A refusal that retrying cannot fix; `status` is the HTTP status or WebSocket close code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriesExhausted(ClientError):
    """Too many connection attempts in a row failed; the last failure is the cause."""


class TransportError(ClientError):
    """A connection attempt or an open session failed; the client reconnects."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StaleConnection(TransportError):
    """Nothing arrived for too long: the connection is presumed dead."""


class AuthExpired(TransportError):
    """The session's token expired or was refused; the next attempt asks for a fresh one."""
