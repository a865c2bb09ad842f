"""Demand: which symbols one upstream holds, by reference counts (no I/O, an injected clock).

The symbols an upstream is subscribed to are its configured `symbols` (pinned) plus every
symbol some reader wants: the hub reports the first reader and the last reader of each
(log, key) of this node (core/hub.py `on_key_demand`) and the start and end of every poll
naming it (core/hub.py `polling`: a poll holds a reference while it runs, so it lingers
`linger_s` after the last poll like after a reader that left), and with `leader_only` the leader adds
what the other nodes' readers want (leader.py). A symbol whose count falls to zero stays
`linger_s` longer (a reader that comes back in time costs the provider nothing); then it is
removed. `flush` returns what changed since the last flush, for the connection to send in
batches; `resubscribe` hands the whole set again after a reconnect.

Readers of `prices` without `?symbols=` add no demand: they read what the pinned symbols and
the other readers bring (a node cannot subscribe a provider's whole market on their behalf).

At most `max_symbols` are held: pinned first, then in the order readers asked; a symbol
beyond is refused (listed in `refused`) until room frees up.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickwire.core.clock import Clock


class Demand:
    def __init__(self, pinned: Iterable[str], linger_s: float, max_symbols: int, clock: Clock) -> None:
        self.pinned = dict.fromkeys(pinned)
        self.linger_s = linger_s
        self.max_symbols = max_symbols
        self.clock = clock
        self.refs: dict[str, int] = {}
        self._leaving: dict[str, float] = {}  # symbol -> when it goes
        self._external: set[str] = set()
        self.held: dict[str, None] = {}  # what the provider was told (as of the last flush)
        self.refused: list[str] = []  # wanted but beyond max_symbols (as of the last `wanted`)
        self.version = 0  # moves whenever `wanted` may have changed

    # -- reference counts --------------------------------------------------------------

    def acquire(self, symbol: str) -> None:
        self.refs[symbol] = self.refs.get(symbol, 0) + 1
        if self._leaving.pop(symbol, None) is None:
            self.version += 1

    def release(self, symbol: str) -> None:
        count = self.refs.get(symbol, 0) - 1
        if count > 0:
            self.refs[symbol] = count
            return
        self.refs.pop(symbol, None)
        if symbol in self.pinned:
            return
        self._leaving[symbol] = self.clock.monotonic() + self.linger_s
        self.version += 1

    def set_external(self, symbols: Iterable[str]) -> None:
        """What other nodes' readers want (leader only): one reference each."""
        new = set(symbols)
        for symbol in new - self._external:
            self.acquire(symbol)
        for symbol in self._external - new:
            self.release(symbol)
        self._external = new

    def local(self) -> list[str]:
        """Symbols this node's own readers hold (shared with the leader)."""
        return sorted(s for s in self.refs if s not in self._external or self.refs[s] > 1)

    # -- what to hold ----------------------------------------------------------------------

    def wanted(self) -> list[str]:
        """Pinned, read and lingering symbols, in priority order, within `max_symbols`."""
        now = self.clock.monotonic()
        for symbol in [s for s, at in self._leaving.items() if at <= now]:
            del self._leaving[symbol]
        ordered = dict(self.pinned)
        ordered.update(dict.fromkeys(self.held))  # what is held keeps its place
        ordered.update(dict.fromkeys(self.refs))
        ordered.update(dict.fromkeys(self._leaving))
        keep = [s for s in ordered if s in self.pinned or s in self.refs or s in self._leaving]
        self.refused = keep[self.max_symbols :]
        return keep[: self.max_symbols]

    def next_deadline(self) -> float | None:
        """When the next lingering symbol goes (monotonic seconds), if any."""
        return min(self._leaving.values(), default=None)

    def flush(self) -> tuple[list[str], list[str]]:
        """(added, removed) since the last flush; the provider is now told `wanted()`."""
        wanted = self.wanted()
        added = [s for s in wanted if s not in self.held]
        keep = set(wanted)
        removed = [s for s in self.held if s not in keep]
        self.held = dict.fromkeys(wanted)
        return added, removed

    def resubscribe(self) -> list[str]:
        """Everything to subscribe on a fresh connection (the provider holds nothing)."""
        self.held = dict.fromkeys(self.wanted())
        return list(self.held)


def batches(symbols: list[str], size: int) -> list[list[str]]:
    """`symbols` in order, `size` at a time (the provider's limit per message)."""
    size = max(1, size)
    return [symbols[i : i + size] for i in range(0, len(symbols), size)]
