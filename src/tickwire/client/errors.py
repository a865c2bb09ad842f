"""The client's exceptions, under the one tickwire root.

TickwireError
└── ClientError             anything the client raises on purpose
    ├── ClientClosed        the client was closed: `events()` ends, no more events
    ├── StreamRefused       the server refused a stream for good (401, 403, 404, 400, close
    │   │                   4001 / 1008 / 4029): reconnecting would not help; fix the request
    │   └── ProtocolVersionError  the server speaks a major protocol version this client
    │                       does not (`"v": 2` or later, SPEC 6): upgrade the client
    ├── RetriesExhausted    `max_attempts` connection attempts in a row failed
    │   └── ConnectTimeout  no connection within `first_connect_timeout_s` of the start
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
    """A refusal that retrying cannot fix.

    `status` is the HTTP status (SSE, poll, a refused WebSocket handshake) or the WebSocket
    close code (4001, 4029, 1008); for a WebSocket `error` message, which closes nothing, it
    is the application close code of the same meaning (4000 + the HTTP status's last two
    digits, as codes.py numbers them: 4004 not found, 4003 forbidden, 4001 unauthorized,
    4000 bad request). `code` is the WebSocket error code (`not_found`, ...) when there was one.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ProtocolVersionError(StreamRefused):
    """The server announced a major protocol version this client does not speak."""


class RetriesExhausted(ClientError):
    """Too many connection attempts in a row failed; the last failure is the cause."""


class ConnectTimeout(RetriesExhausted):
    """The first connection did not succeed within `first_connect_timeout_s`."""


class TransportError(ClientError):
    """A connection attempt or an open session failed; the client reconnects."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StaleConnection(TransportError):
    """Nothing arrived for too long: the connection is presumed dead."""


class AuthExpired(TransportError):
    """The session's token expired or was refused; the next attempt asks for a fresh one."""
