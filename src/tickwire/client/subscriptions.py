"""Reference-counted subscriptions, and how changes become batched WebSocket commands.

Users of one client ask for streams (`orders`) and, on `prices`, for symbols. Each request
is a `Handle`; requests for the same stream, or the same symbol of `prices`, share one
subscription: two users of `prices:AAPL` hold two references to one symbol, the wire sees
one subscription, and only the release of the last reference removes it.

The wanted set (`SubscriptionManager.wanted()`) is what the transport should read:
`{name: StreamSpec}`, where the `prices` spec carries the union of the symbols held
(None = every symbol, when someone asked for the stream without symbols).

On the WebSocket the server keeps one subscription per stream name and a `subscribe`
replaces the symbol set of `prices` (SPEC section 6). `ws_commands` turns a change of the
wanted set into the fewest commands under these bounds: at most `max_entries` (100)
streams per command, and at most `max_symbols` (100) symbols added or removed per
command, a bigger change of the price symbols being split into steps. An entry that adds
symbols starts fresh (a snapshot of the new set: a resume would only replay ticks after
its id, so new symbols would miss their current price); other entries resume from their
last id. While the connection is down nothing is sent: the wanted set is kept and the next
connection subscribes to all of it, each stream from its last id.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tickwire.client.events import StreamSpec

MAX_SYMBOLS_PER_MESSAGE = 100
MAX_STREAMS_PER_MESSAGE = 100


@dataclass(eq=False)
class Handle:
    """One user's hold on a stream (and symbols); `release()` gives it back."""

    spec: StreamSpec
    _manager: SubscriptionManager | None = field(repr=False)

    @property
    def active(self) -> bool:
        return self._manager is not None

    def release(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager._release(self)


class SubscriptionManager:
    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._streams: dict[str, int] = {}  # name -> references without symbols
        self._symbols: dict[str, dict[str, int]] = {}  # name -> symbol -> references
        self._params: dict[str, StreamSpec] = {}  # name -> the spec's other parameters
        self.on_change = on_change
        self.version = 0

    def acquire(self, spec: StreamSpec, handle: Handle | None = None) -> Handle:
        """Hold `spec` until the handle (a new one, or `handle`) is released."""
        known = self._params.get(spec.name)
        if known is not None and known.user_id != spec.user_id:
            raise ValueError(
                f"stream {spec.name!r} is already read with userId={known.user_id!r}; "
                "one client reads a stream with one set of parameters"
            )
        before = self.wanted()
        self._params[spec.name] = StreamSpec(spec.name, None, spec.user_id)
        if spec.symbols:
            counts = self._symbols.setdefault(spec.name, {})
            for symbol in spec.symbols:
                counts[symbol] = counts.get(symbol, 0) + 1
        else:
            self._streams[spec.name] = self._streams.get(spec.name, 0) + 1
        self._changed(before)
        if handle is None:
            return Handle(spec, self)
        handle._manager = self
        return handle

    def _release(self, handle: Handle) -> None:
        before = self.wanted()
        spec = handle.spec
        if spec.symbols:
            counts = self._symbols.get(spec.name, {})
            for symbol in spec.symbols:
                left = counts.get(symbol, 0) - 1
                if left > 0:
                    counts[symbol] = left
                else:
                    counts.pop(symbol, None)
            if not counts:
                self._symbols.pop(spec.name, None)
        else:
            left = self._streams.get(spec.name, 0) - 1
            if left > 0:
                self._streams[spec.name] = left
            else:
                self._streams.pop(spec.name, None)
        if spec.name not in self._streams and spec.name not in self._symbols:
            self._params.pop(spec.name, None)
        self._changed(before)

    def references(self, name: str, symbol: str | None = None) -> int:
        if symbol is None:
            return self._streams.get(name, 0)
        return self._symbols.get(name, {}).get(symbol, 0)

    def wanted(self) -> dict[str, StreamSpec]:
        out: dict[str, StreamSpec] = {}
        for name, params in self._params.items():
            symbols: frozenset[str] | None = None
            if name not in self._streams:
                symbols = frozenset(self._symbols.get(name, {}))
            out[name] = StreamSpec(name, symbols, params.user_id)
        return out

    def _changed(self, before: Mapping[str, StreamSpec]) -> None:
        if self.wanted() != before:
            self.version += 1
            if self.on_change is not None:
                self.on_change()


# -- WebSocket commands ---------------------------------------------------------------------


def symbol_steps(
    old: frozenset[str] | None, new: frozenset[str] | None, max_change: int = MAX_SYMBOLS_PER_MESSAGE
) -> list[frozenset[str] | None]:
    """The symbol sets to subscribe in turn to go from `old` to `new`, each step adding or
    removing at most `max_change` symbols. None means every symbol (no filter)."""
    if old == new:
        return []
    if old is None or new is None:
        return [new]
    removed = sorted(old - new)
    added = sorted(new - old)
    steps: list[frozenset[str] | None] = []
    current = set(old)
    for chunk in _chunks(removed, max_change):
        current.difference_update(chunk)
        steps.append(frozenset(current))
    for chunk in _chunks(added, max_change):
        current.update(chunk)
        steps.append(frozenset(current))
    return steps


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ws_commands(
    current: Mapping[str, StreamSpec],
    wanted: Mapping[str, StreamSpec],
    last_ids: Mapping[str, str | None],
    rids: Iterable[int] | None = None,
    *,
    max_entries: int = MAX_STREAMS_PER_MESSAGE,
    max_symbols: int = MAX_SYMBOLS_PER_MESSAGE,
) -> list[dict[str, Any]]:
    """The `subscribe` / `unsubscribe` commands that take the server from `current` to `wanted`."""
    counter = iter(rids) if rids is not None else itertools.count(1)
    entries: list[dict[str, Any]] = []
    symbol_messages: list[list[dict[str, Any]]] = []
    removed: list[str] = []
    for name, spec in wanted.items():
        old = current.get(name)
        if old is not None and old.user_id != spec.user_id:
            old = None
        if spec.symbols is not None and not spec.symbols:
            if old is not None:
                removed.append(name)
            continue
        if old is None:
            if spec.symbols is not None and len(spec.symbols) > max_symbols:
                steps = symbol_steps(frozenset(), spec.symbols, max_symbols)
                symbol_messages.extend(
                    [StreamSpec(name, step, spec.user_id).ws_request(None)] for step in steps
                )
            else:
                entries.append(spec.ws_request(last_ids.get(name)))
            continue
        if old.symbols != spec.symbols:
            for step in symbol_steps(old.symbols, spec.symbols, max_symbols):
                adds = step is None or (old.symbols is not None and not step <= old.symbols)
                resume = None if adds else last_ids.get(name)
                symbol_messages.append([StreamSpec(name, step, spec.user_id).ws_request(resume)])
                old = StreamSpec(name, step, spec.user_id)
    for name in current:
        if name not in wanted:
            removed.append(name)
    commands: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(removed), max_entries):
        commands.append({"type": "unsubscribe", "rid": str(next(counter)), "streams": list(chunk)})
    batches = [list(chunk) for chunk in _chunks(entries, max_entries)] + symbol_messages
    for batch in batches:
        commands.append({"type": "subscribe", "rid": str(next(counter)), "streams": batch})
    return commands


def command_symbols(command: Mapping[str, Any]) -> int:
    """How many symbols a command names (for the per-message bound)."""
    streams = command.get("streams") or []
    return sum(len(s.get("symbols") or []) for s in streams if isinstance(s, Mapping))
