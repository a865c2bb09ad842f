"""Streams: read views of a log (one log plus a filter) and the rules to resolve them.

The core knows the shape of a stream, not which streams exist: a `Catalog` is built from
`StreamDef`s (tickwire's own are in domain/catalog.py, SPEC section 2). `Catalog.resolve`
turns a request (path, query parameters, caller) into a `Stream`, or raises `StreamError`
with the HTTP status and message the caller should see.

A definition can narrow its stream in three ways, each named by the definition:
- `key_field` + `key_param`: only some keys of its keyed state (`?symbols=A,B`);
- `owner_param`: another user's log (`?userId=U`), allowed to that user and to admins;
- `item_field`: one item named in the path (`strategies/{id}`), owned by a user.

A definition with a `composite_param` reads several of the caller's own streams at once
(`me?streams=orders,alerts`): the parts share the user's log, so one id resumes them all;
an event belongs to it when it belongs to a part, its snapshot is the union of theirs.

A public definition with `deltas` offers delta ticks (SPEC 6, core/delta.py): `?delta=1`
(`"delta":true` on WebSocket) sets `Stream.delta`; other streams refuse the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tickwire.core.event import Event, iso_timestamp, user_log
from tickwire.errors import StreamError

Access = Literal["user", "public"]
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:/^=-]{1,32}$")
KEY_CHARS = re.compile(r"^[A-Za-z0-9._:/^=-]+$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DELTA_PARAM = "delta"
_DELTA_VALUES = {"1": True, "true": True, "0": False, "false": False}

# How one kind of keyed state is presented in a snapshot: (kind's values, timestamp) -> (type, data).
SnapshotBuilder = Callable[[list[dict[str, Any]], str], tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SnapshotPart:
    kind: str
    build: SnapshotBuilder


@dataclass(frozen=True, slots=True)
class StreamDef:
    name: str
    access: Access
    types: frozenset[str]
    public_log: str | None = None
    # Keyed state sent as the snapshot of a new connection, in order.
    snapshot: tuple[SnapshotPart, ...] = ()
    key_field: str | None = None
    key_param: str | None = None
    owner_param: str | None = None
    item_field: str | None = None
    item_label: str = "Item"  # in messages: "Strategy not found"
    composite_param: str | None = None
    key_max_length: int = 32  # longest key accepted in `key_param`
    deltas: bool = False  # its ticks may be sent as deltas (`?delta=1`)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user id and roles, or nobody; and until when the credentials hold.

    `expires_at` is the credentials' expiry in unix seconds (a JWT's `exp`), None when they
    do not expire or the authenticator does not say: connections end at it (SPEC 5).
    """

    user: str | None
    roles: frozenset[str] = frozenset()
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def can_publish(self) -> bool:
        return bool(self.roles & {"admin", "publisher"})


ANONYMOUS = Principal(None)


@dataclass(frozen=True, slots=True)
class Stream:
    """A resolved stream: what one subscription reads."""

    name: str  # dotted form used in clientIds and WebSocket names: "strategies.s1"
    definition: StreamDef
    log: str
    keys: frozenset[str] | None = None
    item: str | None = None
    parts: tuple[Stream, ...] = ()  # a composite stream's streams
    delta: bool = False  # ticks sent as deltas when the reader has their base (core/delta.py)

    @property
    def buffered_parts(self) -> tuple[Stream, ...]:
        """The parts a new reader gets buffered events of (those without a snapshot)."""
        return tuple(p for p in self.parts if not p.definition.snapshot)

    @property
    def path(self) -> str:
        """The stream's path after the prefix: `strategies/s1`."""
        return self.definition.name + (f"/{self.item}" if self.item else "")

    def matches(self, event: Event) -> bool:
        if self.parts:
            return any(part.matches(event) for part in self.parts)
        definition = self.definition
        if event.type not in definition.types:
            return False
        if self.keys is not None and event.data.get(definition.key_field or "") not in self.keys:
            return False
        if self.item is not None and event.data.get(definition.item_field or "") != self.item:
            return False
        return True

    def keep_state(self, value: dict[str, Any]) -> bool:
        """Whether a snapshot entry belongs to this stream (its key filter)."""
        return self.keys is None or value.get(self.definition.key_field or "") in self.keys

    def snapshot_payloads(
        self, states: Mapping[str, list[dict[str, Any]]], ms: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """The snapshot events (type, data) of a new connection, from the state's values."""
        ts = iso_timestamp(ms)
        return [
            part.build([v for v in states.get(part.kind, []) if self.keep_state(v)], ts)
            for part in self.definition.snapshot
        ]


class Catalog:
    """The streams a server offers, and how a request names one of them."""

    def __init__(self, definitions: Iterable[StreamDef], *, max_keys: int = 200, max_parts: int = 20) -> None:
        self.definitions = {d.name: d for d in definitions}
        self.max_keys = max_keys
        self.max_parts = max_parts

    def __contains__(self, name: str) -> bool:
        return name in self.definitions

    def definition(self, path: str) -> StreamDef | None:
        """The definition `path` (e.g. `orders`, `strategies/s1`) names; None for no stream."""
        return self._named(path)[0]

    def _named(self, path: str) -> tuple[StreamDef | None, str]:
        """(the definition `path` names or None, its item part)."""
        head, _, rest = path.strip("/").partition("/")
        definition = self.definitions.get(head)
        if definition is None or bool(rest) != (definition.item_field is not None):
            return None, rest
        return definition, rest

    def resolve(self, path: str, params: Mapping[str, str], principal: Principal) -> Stream:
        """The stream for `path` (e.g. `orders`, `strategies/s1`) as seen by `principal`.

        An item's existence and owner need a registry and are checked by the caller.
        """
        definition, rest = self._named(path)
        if definition is None:
            raise StreamError(404, f"Unknown stream '{path[:100]}'")
        if definition.access == "user" and principal.user is None:
            raise StreamError(401, "No valid session found")
        delta = self._delta(definition, params.get(DELTA_PARAM))
        if definition.composite_param is not None:
            return self._composite(definition, params.get(definition.composite_param), principal)
        if definition.public_log is not None:
            param = definition.key_param
            keys = self.parse_keys(params.get(param), param, definition.key_max_length) if param else None
            return Stream(definition.name, definition, definition.public_log, keys=keys, delta=delta)
        assert principal.user is not None
        owner = self._owner(definition, params, principal)
        if definition.item_field is not None:
            if not NAME_PATTERN.fullmatch(rest):
                raise StreamError(404, f"{definition.item_label} not found")
            return Stream(f"{definition.name}.{rest}", definition, user_log(owner), item=rest)
        return Stream(definition.name, definition, user_log(owner))

    def _composite(self, definition: StreamDef, raw: str | None, principal: Principal) -> Stream:
        param = definition.composite_param
        names = list(dict.fromkeys(n.strip() for n in (raw or "").split(",") if n.strip()))
        if not names:
            raise StreamError(400, f"`{param}` names the streams to read, separated by commas")
        if len(names) > self.max_parts:
            raise StreamError(400, f"`{param}`: at most {self.max_parts} streams")
        own = user_log(principal.user or "")
        parts = []
        for name in names:
            if name.partition("/")[0] == definition.name:
                raise StreamError(400, f"`{param}`: {definition.name} cannot be one of its own streams")
            part = self.resolve(name, {}, principal)
            if part.log != own:
                raise StreamError(
                    400, f"`{param}`: {name[:40]} is not one of your own streams: open it beside"
                )
            parts.append(part)
        merged = StreamDef(
            definition.name,
            "user",
            frozenset().union(*(p.definition.types for p in parts)),
            snapshot=tuple({s.kind: s for p in parts for s in p.definition.snapshot}.values()),
        )
        return Stream(definition.name, merged, own, parts=tuple(parts))

    @staticmethod
    def _delta(definition: StreamDef, raw: str | None) -> bool:
        if raw is None:
            return False
        value = _DELTA_VALUES.get(raw.strip().lower())
        if value is None:
            raise StreamError(400, f"`{DELTA_PARAM}` must be 1 or 0 (true or false), got {raw[:20]!r}")
        if value and not (definition.deltas and definition.public_log is not None):
            raise StreamError(400, f"`{DELTA_PARAM}` does not apply to the {definition.name} stream")
        return value

    @staticmethod
    def _owner(definition: StreamDef, params: Mapping[str, str], principal: Principal) -> str:
        owner = principal.user
        assert owner is not None
        if definition.owner_param is None:
            return owner
        requested = params.get(definition.owner_param) or owner
        if requested != owner and not principal.is_admin:
            raise StreamError(403, f"You may only read your own {definition.name} stream")
        if not NAME_PATTERN.fullmatch(requested):
            raise StreamError(400, f"invalid {definition.owner_param}")
        return requested

    def parse_keys(self, raw: str | None, param: str = "keys", max_length: int = 32) -> frozenset[str] | None:
        """`A,B` -> {A, B}; None (every key) when absent or blank."""
        if raw is None or raw.strip() == "":
            return None
        keys = [s.strip() for s in raw.split(",") if s.strip()]
        if len(keys) > self.max_keys:
            raise StreamError(400, f"`{param}`: at most {self.max_keys} per stream")
        for key in keys:
            if len(key) > max_length or not KEY_CHARS.fullmatch(key):
                raise StreamError(400, f"`{param}`: invalid value {key[:40]!r}")
        return frozenset(keys)
