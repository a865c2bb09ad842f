"""What adapters and the connection exchange: frames out, updates in, requests to poll.

Adapters never do I/O: they turn a subscription change into `Frame`s, a provider message
into a `Parsed` (updates, readiness, errors), a poll into `HttpRequest`s and their answers
into updates. The connection (connection.py, session.py, polling.py) does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tickwire.errors import TickwireError

PRICE = "price:update"
TRADE = "trade:new"


class UpstreamError(TickwireError):
    """The connection to a provider failed; retried with backoff."""


class AuthFailed(UpstreamError):
    """The provider refused the credentials: retrying cannot help (state `failed`)."""


class Malformed(UpstreamError):
    """A provider message that is not what its protocol says: counted and skipped."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A message to send: text, binary, or (`ping=True`) a WebSocket ping frame."""

    data: str | bytes = ""
    ping: bool = False


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None


@dataclass(slots=True)
class Update:
    """One normalised provider update.

    `type` is `price:update` (fields: price, bid, ask, size: numbers; merged into the
    symbol's full state) or a log event (`trade:new`, relayed types) with `data` as is.
    `exchange_ts` is the provider's time of the update (unix ms), `seq` its sequence number
    when it has one; `key` identifies a log event for duplicate drops (a signature, an id).
    `full` says the fields are the whole state (a snapshot), not a delta to merge.
    """

    type: str
    symbol: str
    data: dict[str, Any]
    exchange_ts: int | None = None
    seq: int | None = None
    key: str | None = None
    full: bool = False


@dataclass(slots=True)
class Parsed:
    """What one provider message meant."""

    updates: list[Update] = field(default_factory=list)
    ready: bool = False  # authenticated / welcomed: subscriptions may go out now
    fatal: str | None = None  # the credentials were refused: stop (state `failed`)
    error: str | None = None  # the provider reported a problem: counted, logged
    retry: str | None = None  # the provider asks us to go away for now: reconnect with backoff
    reply: list[Frame] = field(default_factory=list)  # to send back at once


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    symbols: tuple[str, ...] = ()  # what it asks about (for the parser)
    tag: str = ""  # anything else the parser needs to know (a stream name)
