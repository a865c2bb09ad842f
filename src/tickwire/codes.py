"""Close codes and error codes of the WebSocket protocol (SPEC section 6), as data.

A client decides what to do after a close from the code alone:

| code | name | reconnect? |
|---|---|---|
| 1000 | normal | yes, when it needs the streams again (e.g. after an idle timeout) |
| 1001 | going_away | yes, at once (another node), resuming every stream from its last id |
| 1008 | policy_violation | no: the client broke a bound (message size, command rate); fix it first |
| 1011 | internal_error | yes, with backoff (also used when two pings went unanswered) |
| 4001 | unauthorized | no: get a valid token first (after `auth:expired`: reconnect with a fresh one) |
| 4008 | slow_consumer | yes, resuming from the last ids (history has what was not delivered) |
| 4029 | connection_limit | no: a newer connection of the same user took this one's place |

4xxx codes are application codes (RFC 6455 section 7.4.2); the last three digits mirror
the HTTP status they correspond to. `error` messages carry one of `ERROR_CODES`.

Inside the server a connection closes for a `CloseReason` (the core's vocabulary, shared
by SSE and WebSocket); `CLOSE_FOR_REASON` says which close code a WebSocket gets for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class CloseCode:
    code: int
    name: str
    reconnect: bool
    reason: str  # the default reason text sent in the close frame (at most 123 bytes)


NORMAL = CloseCode(1000, "normal", True, "normal closure")
GOING_AWAY = CloseCode(1001, "going_away", True, "server shutting down: reconnect and resume")
POLICY_VIOLATION = CloseCode(1008, "policy_violation", False, "policy violation")
INTERNAL_ERROR = CloseCode(1011, "internal_error", True, "internal error: reconnect and resume")
UNAUTHORIZED = CloseCode(4001, "unauthorized", False, "invalid or expired token")
SLOW_CONSUMER = CloseCode(
    4008, "slow_consumer", True, "slow consumer: reconnect and resume from your last ids"
)
CONNECTION_LIMIT = CloseCode(4029, "connection_limit", False, "too many connections for this user")

CLOSE_CODES: dict[int, CloseCode] = {
    c.code: c
    for c in (
        NORMAL,
        GOING_AWAY,
        POLICY_VIOLATION,
        INTERNAL_ERROR,
        UNAUTHORIZED,
        SLOW_CONSUMER,
        CONNECTION_LIMIT,
    )
}


class CloseReason(StrEnum):
    """Why a connection closes (`Connection.close`); also the `reason` label of metrics."""

    SLOW_CONSUMER = "slow_consumer"  # the outbox passed its bound (SPEC 4)
    CONNECTION_LIMIT = "connection_limit"  # a newer connection of the user took its place
    SHUTDOWN = "shutdown"  # the node is stopping
    IDLE_TIMEOUT = "idle_timeout"  # nothing either way for TICKWIRE_IDLE_TIMEOUT_S
    UNAUTHORIZED = "unauthorized"  # bad credentials on a WebSocket
    AUTH_EXPIRED = "auth_expired"  # the credentials expired on the open connection (SPEC 5)
    POLICY = "policy"  # the client broke a bound (message size, command rate)
    PING_TIMEOUT = "ping_timeout"  # two WebSocket pings unanswered
    INTERNAL = "internal"  # a bug: this connection only
    CLIENT_GONE = "client_gone"  # the peer went away: nothing to send
    BROKER_UNAVAILABLE = "broker_unavailable"  # the stream could not start or restart


CLOSE_FOR_REASON: dict[str, CloseCode] = {
    CloseReason.SLOW_CONSUMER: SLOW_CONSUMER,
    CloseReason.CONNECTION_LIMIT: CONNECTION_LIMIT,
    CloseReason.SHUTDOWN: GOING_AWAY,
    CloseReason.IDLE_TIMEOUT: CloseCode(1000, "idle_timeout", True, "idle timeout: nothing sent either way"),
    CloseReason.UNAUTHORIZED: UNAUTHORIZED,
    CloseReason.AUTH_EXPIRED: CloseCode(
        4001, "auth_expired", False, "token expired: reconnect or authenticate with a fresh token"
    ),
    CloseReason.POLICY: POLICY_VIOLATION,
    CloseReason.PING_TIMEOUT: CloseCode(1011, "ping_timeout", True, "ping timeout: two pings unanswered"),
    CloseReason.INTERNAL: INTERNAL_ERROR,
    CloseReason.BROKER_UNAVAILABLE: CloseCode(
        1011, "broker_unavailable", True, "broker unavailable: reconnect and resume"
    ),
}


def close_code(reason: str) -> CloseCode:
    """The close code a WebSocket closed for `reason` gets (1011 for anything unknown)."""
    return CLOSE_FOR_REASON.get(reason, INTERNAL_ERROR)


# `error` message codes: stable strings clients can switch on.
BAD_REQUEST = "bad_request"
UNKNOWN_TYPE = "unknown_type"
UNAUTHORIZED_ERROR = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
RATE_LIMITED = "rate_limited"
INTERNAL = "internal_error"

ERROR_CODES: dict[str, str] = {
    BAD_REQUEST: "the message is not valid (JSON/MessagePack, fields, types or values); see `message`",
    UNKNOWN_TYPE: "the message `type` is not one the server knows",
    UNAUTHORIZED_ERROR: "the stream needs a user: authenticate first (cookie, Bearer or an `auth` message)",
    FORBIDDEN: "the stream belongs to another user",
    NOT_FOUND: "no such stream (or strategy)",
    TOO_MANY_SUBSCRIPTIONS: "the connection would exceed its subscription limit",
    RATE_LIMITED: "too many commands per second: the command was not executed",
    INTERNAL: "the server failed to start the stream; retry later",
}

# HTTP statuses of the stream catalogue (StreamError) as error codes.
ERROR_FOR_STATUS: dict[int, str] = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED_ERROR,
    403: FORBIDDEN,
    404: NOT_FOUND,
    503: INTERNAL,
}
