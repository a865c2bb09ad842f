"""The hub: who is connected, who reads what, and dispatch through an index.

Dispatch never scans every connection: subscriptions are indexed by log, and those
narrowed to some keys (`?symbols=`) by (log, key), so an update of one key touches only
the subscribers of that key. A subscription being set up (reading its snapshot
or replay from the broker) holds live events and releases the ones after its
starting position, so nothing is lost or doubled in between. A subscription that asked
for delta ticks (`Stream.delta`) is a `DeltaSubscription` (core/delta.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tickwire.codes import CloseReason
from tickwire.core.clock import Clock, SystemClock
from tickwire.core.connection import Connection
from tickwire.core.delta import Bases, delta_of
from tickwire.core.event import USER_LOG_PREFIX, Event, iso_timestamp
from tickwire.core.ids import Position
from tickwire.core.streams import Stream
from tickwire.core.throttle import Throttle


class Subscription:
    """One stream read by one connection."""

    __slots__ = ("conn", "encode", "fmt", "held", "holding", "name", "stream")

    def __init__(self, conn: Connection, stream: Stream, name: str) -> None:
        self.conn = conn
        self.stream = stream
        self.name = name
        self.fmt = conn.codec.cache_key(name)
        codec = conn.codec

        def encode(event: Event) -> bytes:
            return codec.event_frame(event, name)

        self.encode: Callable[[Event], bytes] = encode
        self.holding = True
        self.held: list[Event] = []

    def deliver(self, event: Event) -> None:
        if self.holding:
            self.held.append(event)
            return
        frame = event._wire.get(self.fmt)  # hot path: skip the method call when cached
        if frame is None:
            frame = event.wire(self.fmt, self.encode)
        self.conn.send_event(event, frame)

    def replay(self, event: Event) -> None:
        """Queue a snapshot or replayed event ahead of live ones (bounded by history)."""
        self.conn.send_event(event, event.wire(self.fmt, self.encode), replay=True)

    def go_live(self, after: Position | None) -> None:
        """Deliver held events later than `after` (all of them when None), then go live."""
        self.holding = False
        held, self.held = self.held, []
        for event in held:
            if after is not None and event.pos is not None and not event.pos.after(after):
                continue
            if event.pos is not None and after is not None and event.pos.epoch != after.epoch:
                continue
            self.deliver(event)


class DeltaSubscription(Subscription):
    """A subscription sent a tick as its delta (core/delta.py) when it was sent the tick
    the delta is relative to, and in full otherwise: its first tick of a key, or after
    that tick was superseded unsent, dropped (slow consumer) or held back by the cap."""

    __slots__ = ("key_field", "linked", "sent", "sheds")

    def __init__(self, conn: Connection, stream: Stream, name: str) -> None:
        super().__init__(conn, stream, name)
        self.key_field = stream.definition.key_field or ""
        self.sent: dict[str, str] = {}  # key -> id of the last tick of it queued here
        self.sheds = conn.outbox.sheds
        self.linked = True  # counted by the hub's `Bases` until unsubscribed

    def deliver(self, event: Event) -> None:
        key = event.key
        if self.holding or key is None:
            Subscription.deliver(self, event)
            return
        outbox = self.conn.outbox
        sent = self.sent
        if outbox.sheds != self.sheds:  # the outbox dropped unsent ticks
            sent.clear()
            self.sheds = outbox.sheds
        if not event.tick:
            sent.pop(key, None)  # a keyed log event supersedes the unsent tick of its key
            Subscription.deliver(self, event)
            return
        out = event
        base = event.base
        if base is not None and sent.get(key) == base[0] and not outbox.holds_tick(key):
            out = delta_of(event, self.key_field) or event
        if event.id is not None:
            sent[key] = event.id
        Subscription.deliver(self, out)

    def replay(self, event: Event) -> None:
        super().replay(event)
        if event.tick and event.key is not None and event.id is not None:
            self.sent[event.key] = event.id  # a current value: the next tick may be its delta


class Hub:
    """Connections, subscriptions and dispatch for one node.

    Public ticks (prices) pass a per-key throttle before fan-out: one throttle for
    all subscribers, so conflation costs nothing per connection. User-log ticks
    (position marks) are throttled where they are derived, before they are stamped.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        throttle_s: float = 0.1,
        max_conns_per_user: int = 10,
    ) -> None:
        self.clock = clock or SystemClock()
        self.throttle: Throttle[Event] = Throttle(self.clock, throttle_s)
        self.max_conns_per_user = max_conns_per_user
        self.connections: dict[int, Connection] = {}
        self._by_user: dict[str, OrderedDict[int, Connection]] = {}
        self._by_log: dict[str, dict[Subscription, None]] = {}
        self._by_key: dict[tuple[str, Any], dict[Subscription, None]] = {}
        self._key_field: dict[str, str] = {}  # log -> the field its narrowed streams filter on
        self.bases = Bases()  # what delta ticks are relative to
        # Called with (log, key, True) when a (log, key) gains its first narrowed subscriber
        # and (log, key, False) when it loses its last one (demand for upstream feeds), and
        # once each way around every poll that names the key (`polling`): the receiver
        # counts references. Subscribe, unsubscribe and polls pay for it, dispatch never does.
        self.on_key_demand: Callable[[str, Any, bool], None] | None = None

    # -- connections -------------------------------------------------------------

    def add_connection(self, conn: Connection) -> list[Connection]:
        """Register a connection; returns the oldest ones it pushed over the user's limit.

        The evicted connections have already been sent `connection:limit` and closed.
        """
        self.connections[conn.serial] = conn
        if conn.user is None:
            return []
        conns = self._by_user.setdefault(conn.user, OrderedDict())
        conns[conn.serial] = conn
        evicted = []
        while len(conns) > self.max_conns_per_user:
            _, oldest = conns.popitem(last=False)
            self.limit_exceeded(oldest)
            evicted.append(oldest)
        return evicted

    def limit_exceeded(self, conn: Connection) -> None:
        """Tell a connection it is one too many for its user, and close it."""
        conn.send_control(
            "connection:limit",
            {
                "message": f"Too many connections for this user: at most {self.max_conns_per_user}; "
                "the oldest connection was closed",
                "limit": self.max_conns_per_user,
                "timestamp": iso_timestamp(conn.clock.wall_ms()),
            },
        )
        conn.close(CloseReason.CONNECTION_LIMIT)

    def remove_connection(self, conn: Connection) -> None:
        self.connections.pop(conn.serial, None)
        for sub in list(conn.subscriptions.values()):
            self.unsubscribe(sub)
        if conn.user is not None:
            conns = self._by_user.get(conn.user)
            if conns is not None:
                conns.pop(conn.serial, None)
                if not conns:
                    del self._by_user[conn.user]

    def user_connection_count(self, user: str) -> int:
        return len(self._by_user.get(user, ()))

    def clients_per_user(self) -> dict[str, int]:
        return {user: len(conns) for user, conns in self._by_user.items()}

    # -- subscriptions -----------------------------------------------------------

    def subscribe(self, conn: Connection, stream: Stream, name: str | None = None) -> Subscription:
        """Start a subscription in holding mode; call `go_live` once its replay is queued."""
        key = name or stream.name
        old = conn.subscriptions.get(key)
        if old is not None:
            self.unsubscribe(old)
        sub: Subscription
        if stream.delta:
            sub = DeltaSubscription(conn, stream, key)
            self.bases.reader_added(stream.log)
        else:
            sub = Subscription(conn, stream, key)
        conn.subscriptions[key] = sub
        if stream.keys is not None:
            self._key_field[stream.log] = stream.definition.key_field or ""
            for key in stream.keys:
                subs = self._by_key.get((stream.log, key))
                if subs is None:
                    subs = self._by_key[(stream.log, key)] = {}
                    if self.on_key_demand is not None:
                        self.on_key_demand(stream.log, key, True)
                subs[sub] = None
        else:
            self._by_log.setdefault(stream.log, {})[sub] = None
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        stream = sub.stream
        if sub.conn.subscriptions.get(sub.name) is sub:
            del sub.conn.subscriptions[sub.name]
        if isinstance(sub, DeltaSubscription) and sub.linked:
            sub.linked = False
            self.bases.reader_removed(stream.log)
        if stream.keys is not None:
            for key in stream.keys:
                if _discard(self._by_key, (stream.log, key), sub) and self.on_key_demand is not None:
                    self.on_key_demand(stream.log, key, False)
        else:
            _discard(self._by_log, stream.log, sub)

    @contextmanager
    def polling(self, stream: Stream) -> Iterator[None]:
        """A poll's demand for the keys its stream names, held while it runs (a long-poll's
        wait included) and let go after: a client that polls instead of streaming (the
        SDK's fallback) gets its keys fed upstream too, lingering after its last poll as
        after a reader that left. Public logs only (no upstream feeds a user log)."""
        hook = self.on_key_demand
        if hook is None or stream.keys is None or stream.log.startswith(USER_LOG_PREFIX):
            yield
            return
        keys = sorted(stream.keys)
        for key in keys:
            hook(stream.log, key, True)
        try:
            yield
        finally:
            for key in keys:
                hook(stream.log, key, False)

    # -- dispatch ----------------------------------------------------------------

    def dispatch(self, event: Event) -> int:
        """Hand a stamped event to its subscribers (public ticks through the throttle)."""
        if event.tick and event.key is not None and not event.log.startswith(USER_LOG_PREFIX):
            released = self.throttle.offer(event.key, event)
            if released is None:
                return 0
        return self._fanout(event)

    def release_throttled(self) -> int:
        """Fan out the throttled ticks whose window has ended."""
        return sum(self._fanout(event) for event in self.throttle.due())

    def _fanout(self, event: Event) -> int:
        if event.tick:
            self.bases.link(event)
        count = 0
        subs = self._by_log.get(event.log)
        if subs:
            for sub in subs:
                if sub.stream.matches(event):
                    sub.deliver(event)
                    count += 1
        if self._by_key:
            field = self._key_field.get(event.log)
            subs = self._by_key.get((event.log, event.data.get(field))) if field is not None else None
            if subs:
                for sub in subs:
                    if event.type in sub.stream.definition.types:
                        sub.deliver(event)
                        count += 1
        return count

    def broadcast(self, type_: str, data: dict[str, Any]) -> int:
        """Send an unlogged control event (`test`) to every connection."""
        conns: Iterable[Connection] = list(self.connections.values())
        count = 0
        for conn in conns:
            if not conn.closing:
                conn.send_control(type_, data)
                count += 1
        return count


def _discard(index: dict[Any, dict[Subscription, None]], key: Any, sub: Subscription) -> bool:
    """Remove `sub` from `index[key]`; True when that removed the key's last subscription."""
    subs = index.get(key)
    if subs is None or sub not in subs:
        return False
    del subs[sub]
    if subs:
        return False
    del index[key]
    return True
