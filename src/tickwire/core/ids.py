"""Event ids: `{unix_ms}-{token}`, the token carrying a log position.

A position is `(epoch, offset, tick)`. `offset` counts log events in a log; `tick`
counts every event (log event or tick) ever stamped on that log, so positions are
totally ordered by `(offset, tick)` within one epoch and every id is unique. A tick
carries the offset of the last log event before it, so resuming from it replays
exactly the log events after that point.

The token is the base62 form of one integer packing the three numbers; clients
treat it as opaque.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tickwire.errors import MalformedId

__all__ = [
    "EPOCH_MAX",
    "ID_PATTERN",
    "MalformedId",
    "Position",
    "b62decode",
    "b62encode",
    "format_id",
    "parse_id",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}
_OFFSET_BITS = 48
_TICK_BITS = 48
_EPOCH_BITS = 52  # random per log; exact in Redis's Lua numbers (doubles)
EPOCH_MAX = (1 << _EPOCH_BITS) - 1
_MAX_TOKEN_LEN = 32
ID_PATTERN = re.compile(r"[0-9]{13}-[0-9A-Za-z]+")


def b62encode(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def b62decode(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _INDEX[c]
    return n


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A point in one log: everything at or before it has been seen."""

    epoch: int
    offset: int
    tick: int

    def token(self) -> str:
        packed = (self.epoch << (_OFFSET_BITS + _TICK_BITS)) | (self.offset << _TICK_BITS) | self.tick
        return b62encode(packed)

    def after(self, other: Position) -> bool:
        """True when self is later than other in the same epoch."""
        return (self.offset, self.tick) > (other.offset, other.tick)


def format_id(ms: int, pos: Position) -> str:
    return f"{ms:013d}-{pos.token()}"


def parse_id(event_id: str) -> Position:
    """Position of an id; raises MalformedId for anything else (never a 5xx)."""
    if len(event_id) > 14 + _MAX_TOKEN_LEN or not ID_PATTERN.fullmatch(event_id):
        raise MalformedId("event id must look like {unix_ms}-{token}")
    packed = b62decode(event_id[14:])
    tick = packed & ((1 << _TICK_BITS) - 1)
    offset = (packed >> _TICK_BITS) & ((1 << _OFFSET_BITS) - 1)
    epoch = packed >> (_OFFSET_BITS + _TICK_BITS)
    if epoch > EPOCH_MAX or epoch == 0:
        raise MalformedId("event id has no valid epoch")
    return Position(epoch, offset, tick)
