"""The exception tree of tickwire: every error raised on purpose has one root.

TickwireError
├── ConfigError            invalid configuration (file, env, flags): says which key and why
├── PublishError           an event that cannot be published (HTTP 400); nothing was stamped
├── PayloadError           a payload beyond the bounds: says where and why (core/sanitize.py;
│                          the pipeline answers it with a PublishError)
├── BrokerUnavailable      the broker cannot be reached (HTTP 503; /readyz 503)
│   ├── PublishOutcomeUnknown  the batch was sent but never answered: it may be stored
│   └── IngestDuplicate        an ingest entry another node already published
├── StateConflict          a processor state changed since it was read: derive again
├── Refused                a request that cannot be served: HTTP status, message, headers
│   └── StreamError        a stream that cannot be served (404 unknown, 403 not yours, ...)
├── ProtocolError          a WebSocket command the server will not run (`error` message)
├── DecodeError            a frame that is not one valid message in its encoding
├── MalformedId            text that is not an event id this server could have issued
├── PeerGone               a client's socket went away (or refuses writes): stop writing
├── HeadTooLarge           a request head over TICKWIRE_MAX_HEADER_BYTES: stops the parser, answered
│                          with 431 (drivers/uvicorn_http.py)
├── RuleError              an invalid alert rule or scan body (HTTP 400): names the field (domain/rules.py)
│   ├── RuleLimit          a user's rules at their cap (domain/alert_store.py)
│   └── ScanExists         a scan id already taken (domain/scan_defs.py)
├── ActionFailed           an alert action gave up, e.g. the webhook after its retries (domain/actions.py)
├── UpstreamError          a provider connection failed; retried with backoff (upstream/model.py)
│   ├── AuthFailed         the provider refused the credentials: no retry (state `failed`)
│   ├── Malformed          a provider message outside its protocol: counted and skipped
│   └── Stale              no message from the provider for `stale_s` (upstream/session.py)
├── IllegalTransition      an upstream state change its table does not allow: a bug (upstream/state.py)
├── OrderError             a demo paper order that cannot be carried out (demo/paper.py)
└── ClientError            the Python client's errors (tickwire.client.errors)

Where a caller would catch a builtin (ValueError, RuntimeError, ConnectionError), the class
has that builtin as its second base.

Messages are written for the person who must act on them: what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping

Rid = str | int | None


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

    # True when the request reached the broker but no answer came back.
    outcome_unknown = False


class PublishOutcomeUnknown(BrokerUnavailable):
    """The batch was sent but the broker never answered: it may or may not be stored."""

    outcome_unknown = True


class IngestDuplicate(BrokerUnavailable):
    """The ingest entry was already published (by this or another node)."""


class StateConflict(TickwireError):
    """A batch's processor state changed since it was read (another node wrote it): nothing
    was stamped; read and derive again."""


class Refused(TickwireError):
    """A request the server answers with an HTTP error: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class StreamError(Refused):
    """A stream request that cannot be served: HTTP status and client message."""


class ProtocolError(TickwireError):
    """A WebSocket command the server will not run: answered with an `error` message."""

    def __init__(self, code: str, message: str, rid: Rid = None, stream: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rid = rid
        self.stream = stream


class DecodeError(TickwireError, ValueError):
    """A frame that is not one valid message in the connection's encoding."""


class MalformedId(TickwireError, ValueError):
    """The text is not an id this server could have issued."""


class PeerGone(TickwireError, ConnectionError):
    """The peer went away, or the server refuses to write to it any more."""


def show(value: object, limit: int = 40) -> str:
    """`value` as it appears in an error message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "BrokerUnavailable",
    "ConfigError",
    "DecodeError",
    "IngestDuplicate",
    "MalformedId",
    "PeerGone",
    "ProtocolError",
    "PublishError",
    "PublishOutcomeUnknown",
    "Refused",
    "StateConflict",
    "StreamError",
    "TickwireError",
    "show",
]
