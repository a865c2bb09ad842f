"""Provider updates -> the events tickwire publishes (SPEC 12, "Data").

A `price:update` carries the symbol's full state: the fields of every update are merged
into what this upstream last published for the symbol (a quote brings bid and ask, a trade
the price and size, a delta only what changed), then `source` (the upstream's name) and
`exchangeTs` (the provider's time, unix ms) are added. Updates older than the last one of
their symbol are dropped (`stale`: by sequence number when the provider numbers them, else
by exchange time), and so are repeats that change nothing (`duplicate`). Log events (a
Helius transaction as `trade:new` on the public `chain` log, events a `tickwire` upstream
relays) are published as they are, once per key (signature, id) among the recent ones.

Every event is checked against the catalogue (numbers finite and not negative, texts
strings) before it goes out, so one bad provider value costs that update only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tickwire.domain.catalog import EVENT_TYPES
from tickwire.errors import PublishError
from tickwire.pipeline.validate import PublishRequest, check_data
from tickwire.upstream.config import valid_symbol
from tickwire.upstream.model import PRICE, Update
from tickwire.upstream.stats import ConnectionStats

PRICE_FIELDS = ("price", "bid", "ask", "size")
RECENT_KEYS = 10_000  # log event keys remembered for duplicate drops


class Normalizer:
    def __init__(self, name: str, stats: ConnectionStats, holds: Callable[[str], bool] | None = None) -> None:
        self.name = name
        self.stats = stats
        self.holds = holds or (lambda symbol: True)
        self._state: dict[str, dict[str, float]] = {}
        self._last: dict[str, tuple[int, int]] = {}  # symbol -> (seq or -1, exchange ms or -1)
        self._recent: OrderedDict[str, None] = OrderedDict()

    def forget(self, symbol: str) -> None:
        """The symbol is no longer held: its state goes (bounded by what is held)."""
        self._state.pop(symbol, None)
        self._last.pop(symbol, None)

    def accept(self, update: Update, now_ms: int) -> PublishRequest | None:
        """The request to publish for `update`, or None (dropped, and counted)."""
        request = self._price(update) if update.type == PRICE else self._log_event(update)
        if request is None:
            return None
        spec = EVENT_TYPES.get(request.type)
        try:
            if spec is None or (spec.scope != "public" and spec.public_log is None):
                raise PublishError(f"{request.type} is not a public event type")
            check_data(spec, request.data)
        except PublishError:
            self.stats.drop("invalid")
            return None
        if update.exchange_ts is not None:
            self.stats.latency.observe(max(0, now_ms - update.exchange_ts) / 1000)
        self.stats.updates += 1
        return request

    def _price(self, update: Update) -> PublishRequest | None:
        symbol = update.symbol
        if not valid_symbol(symbol):
            self.stats.drop("invalid")
            return None
        if not self.holds(symbol):
            self.stats.drop("unsubscribed")
            return None
        fields = {k: v for k, v in update.data.items() if k in PRICE_FIELDS and _number(v)}
        if not fields or any(v < 0 for v in fields.values()):  # the catalogue's non_negative
            self.stats.drop("invalid")
            return None
        order = (update.seq if update.seq is not None else -1, update.exchange_ts or -1)
        last = self._last.get(symbol)
        state = self._state.get(symbol)
        if last is not None and state is not None:
            if order[0] >= 0 and last[0] >= 0:
                newer = order[0] > last[0]
            else:  # by exchange time; an update without one cannot be judged: accepted
                newer = order[1] < 0 or order[1] >= last[1]
            if not newer:
                self.stats.drop("stale" if order < last else "duplicate")
                return None
            if order == last and all(state.get(k) == v for k, v in fields.items()):
                self.stats.drop("duplicate")
                return None
        if state is None or update.full:
            state = self._state[symbol] = {}
        state.update(fields)
        self._last[symbol] = order
        data: dict[str, Any] = {"symbol": symbol, **state, "source": self.name}
        if update.exchange_ts is not None:
            data["exchangeTs"] = update.exchange_ts
        return PublishRequest(PRICE, data)

    def _log_event(self, update: Update) -> PublishRequest | None:
        if update.symbol and not valid_symbol(update.symbol):
            self.stats.drop("invalid")
            return None
        if update.symbol and not self.holds(update.symbol):
            self.stats.drop("unsubscribed")
            return None
        if update.key is not None:
            key = f"{update.type}|{update.symbol}|{update.key}"
            if key in self._recent:
                self.stats.drop("duplicate")
                return None
            self._recent[key] = None
            if len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
        data = dict(update.data)
        data["source"] = self.name
        if update.exchange_ts is not None:
            data.setdefault("exchangeTs", update.exchange_ts)
        return PublishRequest(update.type, data)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
