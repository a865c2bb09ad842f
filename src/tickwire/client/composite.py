"""The user's own streams on one connection: `GET {prefix}/me?streams=a,b,...` (SPEC 2).

A server counts at most 10 connections per user (SPEC 5: the 11th pushes out the oldest).
Over SSE and polling one connection per stream would make a client with many user streams
push itself out, so the client reads every stream of the user's own log (orders, positions,
trading, alerts, ai-decisions, strategies/{id}) on one `/me` connection; public streams
(prices, agents, providers) and another user's `trading?userId=` keep a connection each,
the public ones without the token (they need no user: not counted for the user, not ended by
the token's expiry). The
WebSocket carries everything on one socket anyway.

On the `/me` connection every event is the plain payload: which parts it belongs to is told
by its type (and, for `strategies/{id}`, its `strategyId`), so `split` hands each part its
copy (`order:update` goes to both `orders` and `trading`). `connected` and `stream:reset`
go to every part; `auth:expired`, `connection:limit` and `test` are connection-wide.

All parts read one log, so one id resumes them all (`resume_point`): the earliest of the
parts' ids (replaying a little more is safe: what a part has seen is dropped as a
duplicate), or a fresh start when a part never started (it needs its snapshot or buffered
events); a part that started but has no id yet is caught up with the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tickwire.client.events import AUTH_EXPIRED, CONNECTED, CONNECTION_LIMIT, RESET, StreamSpec, WireEvent
from tickwire.client.gaps import earliest

NAME = "me"
PARAM = "streams"
# The event types of each own stream (domain/catalog.py's STREAMS).
PART_TYPES: dict[str, frozenset[str]] = {
    "orders": frozenset({"order:update", "order:fill"}),
    "positions": frozenset({"position:update"}),
    "trading": frozenset({"order:update", "order:fill", "position:update", "trade:new"}),
    "alerts": frozenset({"alert:new", "alert:ack"}),
    "ai-decisions": frozenset({"ai:decision"}),
    "strategies": frozenset({"strategy:update"}),
}
CONNECTION_WIDE = frozenset({AUTH_EXPIRED, CONNECTION_LIMIT, "test"})
# Streams that need no user (SPEC 2): their own connections go without the token, so they
# never count towards the user's connection cap nor end at the token's expiry.
PUBLIC_STREAMS = frozenset({"prices", "agents", "providers"})


def is_public(name: str) -> bool:
    return name in PUBLIC_STREAMS


def joins_me(spec: StreamSpec) -> bool:
    """Whether `spec` is one of the caller's own streams (it can share a `/me` connection)."""
    base, _, item = spec.name.partition("/")
    if base not in PART_TYPES or spec.symbols is not None:
        return False
    if base == "strategies":
        return bool(item)
    return not item and spec.user_id is None


def composite_params(parts: Iterable[StreamSpec]) -> dict[str, str]:
    return {PARAM: ",".join(sorted(p.name for p in parts))}


def resume_point(parts: Sequence[StreamSpec], last_ids: Mapping[str, str | None]) -> str | None:
    """Where the `/me` connection of `parts` resumes (module docstring)."""
    started: frozenset[str] = getattr(last_ids, "started", frozenset())
    ids = [last_ids.get(p.name) for p in parts if not (last_ids.get(p.name) is None and p.name in started)]
    return earliest(ids) if ids else None


def plan(wanted: Mapping[str, StreamSpec], use_me: bool) -> dict[str, dict[str, StreamSpec]]:
    """Which link carries which streams (a link of the user's own streams when 2 or more)."""
    live = {n: s for n, s in wanted.items() if not (s.symbols is not None and not s.symbols)}
    own = {n: s for n, s in live.items() if joins_me(s)} if use_me else {}
    links: dict[str, dict[str, StreamSpec]] = {}
    if len(own) >= 2:
        links[NAME] = own
    for name, spec in live.items():
        if name not in links.get(NAME, {}):
            links[name] = {name: spec}
    return links


class Splitter:
    """Hands the events of one `/me` connection to its parts."""

    def __init__(self, parts: Iterable[StreamSpec]) -> None:
        self.parts = list(parts)
        self._by_type: dict[str, list[tuple[str, str | None]]] = {}
        for part in self.parts:
            base, _, item = part.name.partition("/")
            for type_ in PART_TYPES.get(base, ()):
                self._by_type.setdefault(type_, []).append((part.name, item or None))

    def split(self, event: WireEvent) -> list[WireEvent]:
        type_ = event.type
        if type_ in (CONNECTED, RESET):
            return [event.to(p.name) for p in self.parts]
        if type_ in CONNECTION_WIDE:
            return [event.to("")]
        targets = self._by_type.get(type_)
        if not targets:
            return []
        data = event.data
        out = []
        for name, item in targets:
            if item is not None and (not isinstance(data, dict) or data.get("strategyId") != item):
                continue
            out.append(event.to(name))
        return out
