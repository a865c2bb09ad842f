"""Model-based test of delivery (README "Delivery guarantees", SPEC section 4).

A hypothesis state machine drives one node in-process (FakeClock, connections whose
outbox the test drains and parses as SSE): random publishes of log events and ticks for
several users in batches of up to four, connects, disconnects (reading what was queued or
losing it), resumes from ids the client really received (any of them, not only the last),
bursts that trim history, throttle windows that end, and restarts (a new Node on a new
broker). A simple model says what must have happened:

- log events: along each resume chain (a connection, then the connections that resumed
  from an id it received, and so on) the client holds every log event of its stream
  exactly once and in log order, from the start of its segment (its snapshot, or the
  oldest buffered event) to the end of the log;
- gaps: a resume gets `stream:reset` exactly when its id cannot be honoured (another
  epoch: every id after a restart of the memory broker; history trimmed), and then a
  fresh start; never a silent gap, never a needless reset;
- ticks (`price:update`, position marks) and keyed state: once the throttle windows have
  ended, every connection holds the latest value of each key it has (and every key its
  snapshot stream should have), through resumes that kept it and resets that replaced it.

The same machine runs against the Redis broker (a private redis-server), where a restart
keeps history and epochs: old ids then resume exactly. Example counts: tests/support/fuzzing.py
(small in `make test`, large in `make fuzz`).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from support.fuzzing import budget
from support.nodes import connection
from support.redis_server import RedisServer, require_redis_server
from tickwire.codes import CloseReason
from tickwire.config import load_settings
from tickwire.core.clock import FakeClock
from tickwire.core.connection import Connection
from tickwire.core.ids import parse_id
from tickwire.core.streams import ANONYMOUS, Principal, Stream
from tickwire.domain.catalog import resolve_stream
from tickwire.node import Node
from tickwire.pipeline import PublishRequest
from tickwire.wire.sse import SSEEvent, SSEParser

T = TypeVar("T")

USERS = ("u1", "u2")
SYMBOLS = ("AAA", "BBB")
ORDER_IDS = ("o1", "o2", "o3")
AGENTS = ("a1", "a2")
BUFFER = 6  # TICKWIRE_USER_BUFFER and TICKWIRE_PUBLIC_BUFFER: a burst of 7+ trims
THROTTLE_S = 0.1
MAX_CHAINS = 12  # chains kept to resume from (the oldest disconnected ones are forgotten)
MAX_CONNECTED = 6  # connections open at once (a new one closes the oldest beyond)
STOP_S = 10.0  # a node that takes longer to stop is stuck (a failure, not a hang of the suite)


@dataclass(frozen=True)
class Spec:
    """A stream as the model sees it: its log, its log events, its keyed state."""

    path: str
    public_log: str | None  # None: the user's own log
    types: frozenset[str]  # the log event types it delivers
    ticks: frozenset[str]  # the tick types it delivers
    kinds: tuple[str, ...]  # keyed state in its snapshot (and tracked in the view)


SPECS = {
    s.path: s
    for s in (
        Spec("alerts", None, frozenset({"alert:new"}), frozenset(), ()),
        Spec("orders", None, frozenset({"order:update"}), frozenset(), ("orders",)),
        Spec(
            "positions", None, frozenset({"position:update"}), frozenset({"position:update"}), ("positions",)
        ),
        Spec(
            "trading",
            None,
            frozenset({"order:update", "position:update", "trade:new"}),
            frozenset({"position:update"}),
            ("orders", "positions"),
        ),
        Spec("agents", "agent", frozenset({"agent:status"}), frozenset(), ()),
        Spec("prices", "prices", frozenset(), frozenset({"price:update"}), ("prices",)),
    )
}
# Streams a client connects to; those with both log events and ticks are drawn more often.
PATHS = ["alerts", "orders", "positions", "positions", "trading", "trading", "agents", "prices"]
KIND_OF_TYPE = {"order:update": ("orders", "orderId"), "position:update": ("positions", "symbol")}
KIND_OF_TYPE["price:update"] = ("prices", "symbol")
SNAPSHOT_LISTS = {"orders": "orders", "positions": "positions", "prices": "prices"}


@dataclass(frozen=True)
class Segment:
    """A stretch of a chain with no reset in it."""

    start: int  # index in the chain's items where it begins
    base: int  # log offsets <= base were covered without being delivered (snapshot, trimmed)
    gen: int  # the broker generation (epoch) of its ids


@dataclass(frozen=True)
class Item:
    """One event a client received, as the model classifies it."""

    kind: str  # "reset", "snapshot", "log", "tick"
    event: SSEEvent
    seg: Segment
    offset: int = 0  # the model's offset of a log event


@dataclass(frozen=True)
class Logged:
    offset: int
    type: str
    id: str


@dataclass
class Chain:
    """What one client holds for one stream, across its connections."""

    name: str
    user: str
    spec: Spec
    symbols: tuple[str, ...] | None
    stream: Stream
    items: list[Item]
    seg: Segment
    conn: Connection | None = None

    @property
    def log(self) -> str:
        return self.spec.public_log or f"user:{self.user}"


# -- publish requests ------------------------------------------------------------------------

alerts = st.tuples(st.just("alert"), st.sampled_from(USERS), st.sampled_from(["info", "warning", "error"]))
orders = st.tuples(
    st.just("order"),
    st.sampled_from(USERS),
    st.sampled_from(ORDER_IDS),
    st.sampled_from(["new", "working", "filled", "canceled"]),
)
trades = st.tuples(st.just("trade"), st.sampled_from(USERS))
positions = st.tuples(
    st.just("position"),
    st.sampled_from(USERS),
    st.sampled_from(SYMBOLS),
    st.sampled_from([0, 5, 10, -3]),
    st.sampled_from([99.0, 100.0, 101.5]),
)
prices = st.tuples(st.just("price"), st.sampled_from(SYMBOLS), st.integers(90, 110).map(float))
agents = st.tuples(st.just("agent"), st.sampled_from(AGENTS), st.sampled_from(["running", "stopped"]))
# Positions and prices (ticks, marks) are drawn more often than the other log events.
requests = st.one_of(alerts, orders, trades, positions, positions, prices, prices, prices, agents)


class DeliveryMachine(RuleBasedStateMachine):
    redis_url: str | None = None  # set by the Redis variant

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.prefix = f"model-{uuid.uuid4().hex[:10]}"
        broker = "memory" if self.redis_url is None else f"{self.redis_url}?prefix={self.prefix}"
        self.settings = load_settings(
            env={
                "TICKWIRE_SECRET": "s" * 32,
                "TICKWIRE_BROKER": broker,
                "TICKWIRE_USER_BUFFER": str(BUFFER),
                "TICKWIRE_PUBLIC_BUFFER": str(BUFFER),
                "TICKWIRE_THROTTLE_MS": str(int(THROTTLE_S * 1000)),
                "TICKWIRE_BUFFER_TTL_S": "3600",
                "TICKWIRE_MAX_CONNS_PER_USER": "1000",
            }
        )
        self.node: Node | None = None
        self.node = self.run(self._start_node())
        self.seq = itertools.count(1)
        self.names = itertools.count(1)
        self.gen = 0
        self.chains: list[Chain] = []
        self.steps = 0  # rules run, and when the last restart and burst were
        self.last_restart = self.last_burst = self.last_settle = 0
        # the model: log events per log, and the latest keyed values
        self.logs: dict[str, list[Logged]] = {}
        self.log_ids: dict[str, Logged] = {}
        self.orders: dict[tuple[str, str], dict[str, Any]] = {}
        self.positions: dict[tuple[str, str], dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}
        self.holders: dict[str, set[str]] = {}  # users with an open position, per symbol

    # -- plumbing ----------------------------------------------------------------------------

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _start_node(self) -> Node:
        node = Node(self.settings, clock=self.clock)
        await node.start()
        return node

    async def _stop_node(self, node: Node) -> None:
        stopping = asyncio.ensure_future(node.stop())
        done, _ = await asyncio.wait({stopping}, timeout=STOP_S)
        if not done:
            stuck = sorted(t.get_name() for t in asyncio.all_tasks() if t.cancelling())
            stopping.cancel()
            raise AssertionError(f"Node.stop() did not end within {STOP_S} s; tasks ignoring cancel: {stuck}")
        stopping.result()

    def teardown(self) -> None:
        try:
            if self.node is not None:
                self.run(self._stop_node(self.node))
            self.run(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    @property
    def live(self) -> Node:
        assert self.node is not None
        return self.node

    def connected(self) -> list[Chain]:
        return [c for c in self.chains if c.conn is not None]

    def first_retained(self, log: str) -> int:
        count = len(self.logs.get(log, []))
        return max(1, count - BUFFER + 1)

    def fresh_base(self, spec: Spec, log: str) -> int:
        """Log offsets a fresh start covers without delivering them one by one."""
        if spec.kinds:  # a snapshot covers everything so far
            return len(self.logs.get(log, []))
        return self.first_retained(log) - 1  # the buffered events follow

    def new_connection(self, user: str | None) -> Connection:
        conn = connection(self.live, user, outbox_limit=1 << 22)
        self.live.sessions.register(conn)
        return conn

    @staticmethod
    def pick(data: st.DataObject, chains: list[Chain]) -> Chain:
        """One of `chains`, drawn by name (so that a failing example reads well)."""
        by_name = {c.name: c for c in chains}
        return by_name[data.draw(st.sampled_from(sorted(by_name)), label="chain")]

    # -- receiving -----------------------------------------------------------------------------

    def drain(self, chain: Chain) -> list[SSEEvent]:
        assert chain.conn is not None
        return list(SSEParser().feed(chain.conn.outbox.drain()))

    def receive(self, chain: Chain, events: list[SSEEvent], *, complete: bool = True) -> None:
        """The client reads `events`; `complete`: all that was queued for it (else it was cut
        off after them, and holds a prefix of what it should)."""
        for event in events:
            if event.event == "stream:reset":
                assert event.json()["recovered"] is False, event
                chain.seg = Segment(len(chain.items), self.fresh_base(chain.spec, chain.log), self.gen)
                chain.items.append(Item("reset", event, chain.seg))
                continue
            data = event.json()
            if data.get("snapshot") is True or data.get("initializing") is True:
                kinds = {KIND_OF_TYPE[event.event][0]} if event.event in KIND_OF_TYPE else set()
                assert kinds & set(chain.spec.kinds), (chain.name, "unexpected snapshot", event)
                chain.items.append(Item("snapshot", event, chain.seg))
                continue
            assert event.id is not None, (chain.name, "an event without an id", event)
            logged = self.log_ids.get(event.id)
            if logged is not None:
                assert event.event in chain.spec.types, (chain.name, "another stream's event", event)
                assert event.id in {e.id for e in self.logs.get(chain.log, [])}, (chain.name, "another log")
                chain.items.append(Item("log", event, chain.seg, logged.offset))
            else:
                assert event.event in chain.spec.ticks, (chain.name, "not a tick of this stream", event)
                if chain.symbols is not None:
                    assert data["symbol"] in chain.symbols, (chain.name, "a symbol it did not ask for")
                chain.items.append(Item("tick", event, chain.seg))
        self.check_log(chain, complete)

    def check_log(self, chain: Chain, complete: bool) -> None:
        """Exactly once, in order, no gap: the segment's log events are the log's (a prefix
        of them when the client was cut off). A segment of a memory broker gone in a restart
        was checked against its log while it lived: a connection resuming it gets a reset
        first (`resume_from`), so nothing is added to it."""
        seg = chain.seg
        if seg.gen != self.gen:
            return
        got = [it.offset for it in chain.items[seg.start :] if it.kind == "log"]
        want = [
            e.offset
            for e in self.logs.get(chain.log, [])
            if e.offset > seg.base and e.type in chain.spec.types
        ]
        if not complete:
            want = want[: len(got)]
        assert got == want, (
            f"{chain.name} ({chain.spec.path} of {chain.user}): log offsets received {got}, "
            f"expected {want} (segment base {seg.base})"
        )

    def view(self, chain: Chain) -> dict[str, dict[str, dict[str, Any]]]:
        """The keyed values the client holds: its segment's snapshot, then every update."""
        out: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in chain.spec.kinds}
        for item in chain.items[chain.seg.start :]:
            if item.kind == "reset":
                continue
            data = item.event.json()
            if item.kind == "snapshot":
                kind = KIND_OF_TYPE[item.event.event][0]
                for value in data[SNAPSHOT_LISTS[kind]]:
                    out[kind][str(value[KIND_OF_TYPE[item.event.event][1]])] = dict(value)
            elif item.event.event in KIND_OF_TYPE:
                kind, field_ = KIND_OF_TYPE[item.event.event]
                if kind in out:
                    out[kind].setdefault(str(data[field_]), {}).update(data)
        return out

    def check_view(self, chain: Chain) -> None:
        """After the throttle windows ended: the latest value of every key."""
        view = self.view(chain)
        where = f"{chain.name} ({chain.spec.path} of {chain.user})"
        if "orders" in view:
            truth = {oid: v for (user, oid), v in self.orders.items() if user == chain.user}
            assert set(view["orders"]) == set(truth), (where, "orders", view["orders"], truth)
            for oid, value in view["orders"].items():
                assert (value["seq"], value["status"]) == (truth[oid]["seq"], truth[oid]["status"]), (
                    where,
                    oid,
                    value,
                    truth[oid],
                )
        if "positions" in view:
            truth = {s: v for (user, s), v in self.positions.items() if user == chain.user}
            open_ = {s for s, v in truth.items() if v["quantity"] != 0}
            assert open_ <= set(view["positions"]), (where, "positions missing", view["positions"], truth)
            for symbol, value in view["positions"].items():
                got = {"quantity": value["quantity"], "currentPrice": value["currentPrice"]}
                assert got == truth[symbol], (where, symbol, "holds", value, "latest is", truth[symbol])
        if "prices" in view:
            truth_prices = {
                s: v for s, v in self.prices.items() if chain.symbols is None or s in chain.symbols
            }
            assert set(view["prices"]) == set(truth_prices), (where, view["prices"], truth_prices)
            for symbol, value in view["prices"].items():
                assert value["price"] == truth_prices[symbol]["price"], (
                    where,
                    symbol,
                    value,
                    truth_prices[symbol],
                )

    # -- the model's side of a publish ---------------------------------------------------------

    def request(self, spec: tuple[Any, ...]) -> tuple[PublishRequest, str | None]:
        """The request for a drawn item, and the log it appends a log event to (None: a tick)."""
        seq = next(self.seq)
        kind = spec[0]
        if kind == "alert":
            _, user, level = spec
            return PublishRequest("alert:new", {"message": f"m{seq}", "level": level, "seq": seq}, user), (
                f"user:{user}"
            )
        if kind == "order":
            _, user, oid, status = spec
            data = {"orderId": oid, "symbol": "AAA", "side": "buy", "qty": 10, "status": status, "seq": seq}
            return PublishRequest("order:update", data, user), f"user:{user}"
        if kind == "trade":
            _, user = spec
            data = {"tradeId": f"t{seq}", "symbol": "BBB", "qty": 1, "price": 100.0, "seq": seq}
            return PublishRequest("trade:new", data, user), f"user:{user}"
        if kind == "position":
            _, user, symbol, qty, current = spec
            data = {
                "symbol": symbol,
                "quantity": qty,
                "entryPrice": 100.0,
                "currentPrice": current,
                "seq": seq,
            }
            return PublishRequest("position:update", data, user), f"user:{user}"
        if kind == "price":
            _, symbol, value = spec
            data = {"symbol": symbol, "price": value, "bid": value - 0.5, "ask": value + 0.5, "seq": seq}
            return PublishRequest("price:update", data), None
        _, agent, state = spec
        return PublishRequest("agent:status", {"agentId": agent, "state": state, "seq": seq}), "agent"

    def apply(self, req: PublishRequest, log: str | None, event_id: str | None) -> None:
        """What the published request changes in the model."""
        if log is not None:
            assert event_id is not None
            offset = len(self.logs.get(log, [])) + 1
            assert parse_id(event_id).offset == offset, (
                "a log event's id carries its offset",
                event_id,
                offset,
            )
            logged = Logged(offset, req.type, event_id)
            self.logs.setdefault(log, []).append(logged)
            self.log_ids[event_id] = logged
        data = req.data
        if req.type == "order:update":
            assert req.user is not None
            self.orders.setdefault((req.user, data["orderId"]), {}).update(data)
        elif req.type == "position:update":
            assert req.user is not None
            self.positions[(req.user, data["symbol"])] = {
                "quantity": data["quantity"],
                "currentPrice": data["currentPrice"],
            }
            holders = self.holders.setdefault(data["symbol"], set())
            if data["quantity"] != 0:
                holders.add(req.user)
            else:
                holders.discard(req.user)
        elif req.type == "price:update":
            assert event_id is not None
            self.prices[data["symbol"]] = data
            for user in self.holders.get(data["symbol"], ()):
                self.positions[(user, data["symbol"])]["currentPrice"] = data["price"]

    def publish(self, items: list[tuple[Any, ...]]) -> None:
        built = [self.request(item) for item in items]
        ids = self.run(self.live.publish([req for req, _ in built]))
        assert len(ids) == len(built)
        for (req, log), event_id in zip(built, ids, strict=True):
            self.apply(req, log, event_id)

    # -- rules ---------------------------------------------------------------------------------

    @rule(items=st.lists(requests, min_size=1, max_size=4))
    def publish_batch(self, items: list[tuple[Any, ...]]) -> None:
        self.publish(items)

    @rule(
        user=st.sampled_from(USERS),
        symbol=st.sampled_from(SYMBOLS),
        moves=st.lists(
            st.one_of(
                st.tuples(st.sampled_from([0, 5, 10, -3]), st.sampled_from([99.0, 100.0, 101.5])),
                st.integers(90, 110).map(float),
            ),
            min_size=2,
            max_size=6,
        ),
        together=st.booleans(),
    )
    def busy_symbol(self, user: str, symbol: str, moves: list[Any], together: bool) -> None:
        """One user's position in one symbol and its prices, within one throttle window:
        marks held back by the throttle meet the position's own updates."""
        items: list[tuple[Any, ...]] = [
            ("position", user, symbol, *m) if isinstance(m, tuple) else ("price", symbol, m) for m in moves
        ]
        if together:
            self.publish(items)
        else:
            for item in items:
                self.publish([item])

    @precondition(lambda self: self.steps - self.last_burst >= 6)
    @rule(who=st.sampled_from([*USERS, "agent"]), extra=st.integers(1, 3), batch=st.integers(1, 4))
    def burst(self, who: str, extra: int, batch: int) -> None:
        """More log events than the buffer holds: older ids now point into trimmed history."""
        self.last_burst = self.steps
        item: tuple[Any, ...] = ("agent", "a1", "running") if who == "agent" else ("alert", who, "info")
        items = [item] * (BUFFER + extra)
        for i in range(0, len(items), batch):
            self.publish(items[i : i + batch])

    @rule(
        user=st.sampled_from(USERS),
        path=st.sampled_from(PATHS),
        symbols=st.sampled_from([None, ("AAA",), ("AAA", "BBB")]),
    )
    def connect(self, user: str, path: str, symbols: tuple[str, ...] | None) -> None:
        """A new client: a fresh start (snapshot, or buffered events), then live."""
        self.connect_fresh(user, path, symbols)

    def connect_fresh(self, user: str, path: str, symbols: tuple[str, ...] | None) -> Chain:
        spec = SPECS[path]
        if spec.path != "prices":
            symbols = None
        params = {"symbols": ",".join(symbols)} if symbols else {}
        principal = ANONYMOUS if spec.public_log is not None else Principal(user)
        stream = resolve_stream(path, params, principal)
        chain = Chain(
            f"c{next(self.names)}",
            user,
            spec,
            symbols,
            stream,
            [],
            Segment(0, self.fresh_base(spec, stream.log), self.gen),
        )
        self.make_room()
        chain.conn = self.new_connection(principal.user)
        recovered = self.run(self.live.sessions.attach(chain.conn, stream, None))
        assert recovered is True
        self.chains.append(chain)
        events = self.drain(chain)
        assert all(e.event != "stream:reset" for e in events), events
        self.receive(chain, events)
        return chain

    @precondition(lambda self: any(c.conn is not None for c in self.chains))
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """A client reads what is queued for it."""
        chain = self.pick(data, self.connected())
        self.receive(chain, self.drain(chain))

    @precondition(lambda self: any(c.conn is not None for c in self.chains))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        """The client goes away, having read some of what was queued (the rest is lost)."""
        chain = self.pick(data, self.connected())
        self.close(chain, self.cut(data, chain))

    def cut(self, data: st.DataObject, queued: Chain | list[SSEEvent]) -> list[SSEEvent]:
        """What the client reads of its queue (a chain's, or `queued` events) before the
        connection drops: all, none, or a part (any event can be the last before a drop)."""
        events = self.drain(queued) if isinstance(queued, Chain) else queued
        read = data.draw(
            st.one_of(st.just(len(events)), st.just(0), st.integers(0, len(events))), label="events read"
        )
        return events[:read]

    def close(self, chain: Chain, read: list[SSEEvent] | None = None) -> None:
        """The connection drops once the client read `read` (None: all that was queued)."""
        assert chain.conn is not None
        if read is None:
            self.receive(chain, self.drain(chain))
        else:
            self.receive(chain, read, complete=False)
        self.live.sessions.unregister(chain.conn)
        chain.conn.close(CloseReason.CLIENT_GONE)
        chain.conn = None

    def make_room(self) -> None:
        """Before a new chain: the oldest connection beyond the bound reads and goes away,
        and the oldest disconnected chains are forgotten."""
        connected = self.connected()
        if len(connected) >= MAX_CONNECTED:
            self.close(connected[0])
        while len(self.chains) >= MAX_CHAINS:
            gone = next((c for c in self.chains if c.conn is None), self.chains[0])
            if gone.conn is not None:
                self.close(gone)
            self.chains.remove(gone)

    @precondition(lambda self: any(it.event.id is not None for c in self.chains for it in c.items))
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        """A client reconnects with an id it received on a connection of the chain (open or
        closed): mostly the last one (what a browser sends), else any."""
        parent = self.pick(data, [c for c in self.chains if any(it.event.id is not None for it in c.items)])
        indexes = [i for i, it in enumerate(parent.items) if it.event.id is not None]
        index = data.draw(
            st.one_of(st.just(indexes[-1]), st.sampled_from(indexes)),
            label=f"resume {parent.name} after its item",
        )
        self.resume_from(parent, index)

    @precondition(lambda self: any(c.conn is not None for c in self.chains))
    @rule(
        data=st.data(),
        away=st.lists(st.lists(requests, min_size=1, max_size=4), max_size=2),
        wait=st.sampled_from([0.0, 0.0, THROTTLE_S]),
        again=st.booleans(),
    )
    def reconnect(
        self, data: st.DataObject, away: list[list[tuple[Any, ...]]], wait: float, again: bool
    ) -> None:
        """A browser's reconnect: the connection drops (having read some of what was queued),
        things happen while the client is away (a throttle window may end), and it comes back
        with the last id it received (a fresh start without one); `again`: that connection
        drops too, part-way through what it was sent, and the client comes back once more."""
        chain = self.pick(data, self.connected())
        self.close(chain, self.cut(data, chain))
        for items in away:
            self.publish(items)
        if wait:
            self.time_passes(wait)
        if again:
            chain = self.come_back(chain, data)
        self.come_back(chain)

    def come_back(self, chain: Chain, drop: st.DataObject | None = None) -> Chain:
        """The client of a closed `chain` reconnects with its last id (or afresh); with `drop`,
        the new connection drops again once the client read part of what it was sent."""
        indexes = [i for i, it in enumerate(chain.items) if it.event.id is not None]
        if indexes:
            return self.resume_from(chain, indexes[-1], drop)
        return self.connect_fresh(chain.user, chain.spec.path, chain.symbols)

    def resume_from(self, parent: Chain, index: int, drop: st.DataObject | None = None) -> Chain:
        """A new connection resuming `parent` after its item `index`; checks the reset rule.
        With `drop`, it drops once the client read part of what it was sent."""
        last = parent.items[index]
        assert last.event.id is not None
        chain = Chain(
            f"c{next(self.names)}",
            parent.user,
            parent.spec,
            parent.symbols,
            parent.stream,
            parent.items[: index + 1],
            last.seg,
        )
        if last.seg.gen != self.gen:
            expected: str | None = "unknown_epoch"
        elif parse_id(last.event.id).offset + 1 < self.first_retained(chain.log):
            expected = "history_trimmed"
        else:
            expected = None
        self.make_room()
        chain.conn = self.new_connection(None if parent.spec.public_log else parent.user)
        recovered = self.run(self.live.sessions.attach(chain.conn, chain.stream, last.event.id))
        self.chains.append(chain)
        events = self.drain(chain)
        resets = [e for e in events if e.event == "stream:reset"]
        where = f"{chain.name}: resume of {parent.spec.path} from {last.kind} {last.event.id}"
        if expected is None:
            assert recovered is True and not resets, (where, "needless reset", resets)
        else:
            assert recovered is False, (where, f"expected a reset ({expected})")
            assert events and events[0].event == "stream:reset", (where, "the reset comes first", events)
            assert events[0].json()["reason"] == expected, (where, events[0].data)
            assert len(resets) == 1, (where, resets)
        if drop is None:
            self.receive(chain, events)
        else:
            self.close(chain, self.cut(drop, events))
        return chain

    @rule(dt=st.sampled_from([0.03, 0.05, THROTTLE_S]))
    def time_passes(self, dt: float) -> None:
        """Part of a throttle window: what is due goes out (the node's timer step)."""
        self.clock.advance(dt)
        self.run(self.live.housekeeping.step())

    @precondition(lambda self: self.steps - self.last_settle >= 3)
    @rule()
    def settle(self) -> None:
        """Every throttle window ends; every client reads; keyed values are the latest."""
        self.last_settle = self.steps
        self._settle()
        for chain in self.connected():
            self.check_view(chain)

    def _settle(self) -> None:
        self.clock.advance(THROTTLE_S)
        self.run(self.live.housekeeping.step())
        for chain in self.connected():
            self.receive(chain, self.drain(chain))

    @precondition(lambda self: self.steps - self.last_restart >= 15)
    @rule()
    def restart(self) -> None:
        """The node stops (clients read what was queued) and a new one starts on a new
        broker: the memory broker's history and portfolios are gone, Redis keeps them."""
        self.last_restart = self.steps
        if self.redis_url is not None:
            self._settle()  # marks held by the throttle are the old node's memory
        self.run(self._stop_node(self.live))
        for chain in self.connected():
            self.receive(chain, self.drain(chain))
            chain.conn = None
        self.node = None
        if self.redis_url is None:
            self.gen += 1
            self.holders.clear()
            self.logs.clear()
            self.log_ids.clear()
            self.orders.clear()
            self.positions.clear()
            self.prices.clear()
        self.node = self.run(self._start_node())

    @invariant()
    def connections_stay_open(self) -> None:
        self.steps += 1
        for chain in self.connected():
            assert chain.conn is not None
            assert not chain.conn.closing, (chain.name, "closed by the server", chain.conn.close_reason)


def test_delivery_model_memory() -> None:
    run_state_machine_as_test(DeliveryMachine, settings=budget(150, steps=40))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(require_redis_server()).start()
    yield server
    server.close()


def test_delivery_model_redis(redis_server: RedisServer) -> None:
    class RedisDeliveryMachine(DeliveryMachine):
        redis_url = redis_server.url

    run_state_machine_as_test(RedisDeliveryMachine, settings=budget(15, steps=30))
