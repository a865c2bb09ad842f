"""The scan runner (SPEC 13): every node runs one; each scan runs on one node at a time.

    every `tick_s` (0.25 s), or at once when this node's API changed a scan: the scans and
    their `ctl` (read again every second, or at once after such a change) ─► running, or
    on-demand cycles queued?
      ─► hold the scan's lease (`Broker.lease("scan:{id}")`, 5 s, renewed every second;
         a dead holder's scan moves to another node within 5 s) ─► a cycle when one is due:
         `intervalS` after the last one, or for a queued on-demand request (taken off the
         queue with a versioned write of `ctl`): at most one a `tick_s` per scan, so the
         first request after a pause starts at once and a burst waits in the bounded queue

A cycle reads the current prices from the broker's keyed state (the `prices` log), skips
symbols evaluated less than `minSymbolIntervalS` ago (pacing, on this node), evaluates the
condition (a `pct_move` scan keeps windows of the prices it sampled, windows.py), and
publishes, in batches of 250 symbols (progress), each symbol's `scan:result` whose hash
(scan, symbol, kind, threshold, value rounded to `round` decimals) differs from the last
one published for that symbol (a symbol that stops matching forgets its hash), with a
`scan:status` tick (`cycle`, `scanned`, `total`, `results`, `durationMs`). The hashes and
the scan's stats are written with those events, from the versions read: a runner that
lost its lease without knowing it gets a conflict and publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tickwire.brokers.base import Batch, Broker, Publication, StateWrite
from tickwire.core.clock import Clock
from tickwire.core.event import Event, iso_timestamp
from tickwire.domain.catalog import PRICES_LOG
from tickwire.domain.rules import fmt, holds
from tickwire.domain.scan_defs import ScanDef, ScanStore, scan_log
from tickwire.domain.windows import Windows
from tickwire.errors import BrokerUnavailable, StateConflict

log = logging.getLogger("tickwire.scans")

LEASE_S = 5.0
RENEW_S = 1.0
REFRESH_S = 1.0
CHUNK = 250


@dataclass(slots=True)
class Known:
    """What this node knows of one scan."""

    scan: ScanDef
    ctl: dict[str, Any]
    next_at: float = float("-inf")  # monotonic: when its next interval cycle is due here
    demanded_at: float = float("-inf")  # monotonic: its last on-demand cycle here
    leased_at: float = float("-inf")
    held: bool = False


def result_hash(scan: ScanDef, symbol: str, value: float) -> str:
    key = f"{scan.scanId}|{symbol}|{scan.kind}|{scan.threshold!r}|{round(value, scan.round)!r}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def reason(scan: ScanDef, value: float) -> str:
    if scan.kind == "price_above":
        return f"price {fmt(value)} at or above {fmt(scan.threshold)}"
    if scan.kind == "price_below":
        return f"price {fmt(value)} at or below {fmt(scan.threshold)}"
    return f"moved {value:+.2f}% within {fmt(scan.windowS or 0)} s (threshold {fmt(scan.threshold)}%)"


class ScanRunner:
    def __init__(
        self,
        store: ScanStore,
        clock: Clock,
        *,
        node_id: str,
        published: Callable[[Sequence[Event]], None] | None = None,
        tick_s: float = 0.25,
    ) -> None:
        self.store = store
        self.broker: Broker = store.broker
        self.clock = clock
        self.node_id = node_id
        self.published = published or (lambda events: None)
        self.tick_s = tick_s
        self._known: dict[str, Known] = {}
        self._refreshed_at = float("-inf")
        self._evaluated: dict[str, dict[str, float]] = {}  # scan -> symbol -> last evaluation
        self._windows: dict[str, Windows] = {}  # pct_move scans: their samples
        self._wake = asyncio.Event()
        store.changed = self.invalidate

    def invalidate(self) -> None:
        """A scan changed on this node: read the scans again and step now."""
        self._refreshed_at = float("-inf")
        self._wake.set()

    async def run(self) -> None:
        task = asyncio.current_task()
        # A cancel the Redis client turned into an error (it reads as BrokerUnavailable) still
        # counts as requested: stop then, or Node.stop would wait for this loop forever.
        while task is None or not task.cancelling():
            self._wake.clear()
            try:
                await self.step()
            except BrokerUnavailable as exc:
                log.warning("scans paused: broker unavailable", extra={"error": str(exc)})
            except Exception:
                log.exception("scan step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
        raise asyncio.CancelledError

    async def stop(self) -> None:
        """Give up the leases this node holds (another node takes the scans at once)."""
        for known in self._known.values():
            await self._let_go(known)

    async def step(self) -> int:
        """One pass over the scans; how many cycles ran."""
        if self.clock.monotonic() - self._refreshed_at >= REFRESH_S:
            await self._refresh()
        ran = 0
        for known in list(self._known.values()):
            queued = int(known.ctl.get("queued", 0) or 0) > 0
            if known.ctl.get("state") != "running" and not queued:
                await self._let_go(known)
                continue
            if not await self._hold(known):
                continue
            if queued:
                if self.clock.monotonic() - known.demanded_at < self.tick_s:
                    continue  # paced: the next step takes it
                if not await self._dequeue(known):
                    continue
                known.demanded_at = self.clock.monotonic()
            elif self.clock.monotonic() < known.next_at:
                continue
            await self.cycle(known.scan, str(known.ctl.get("state", "stopped")))
            known.next_at = self.clock.monotonic() + known.scan.intervalS
            ran += 1
        return ran

    async def _refresh(self) -> None:
        ids = await self.store.ids()
        names = ("def", "ctl")
        stored = await self.broker.load([(scan_log(i), n) for i in ids for n in names])
        seen: dict[str, Known] = {}
        for n, scan_id in enumerate(ids):
            definition, ctl = stored[2 * n], stored[2 * n + 1]
            if definition.value is None:
                continue
            scan = ScanDef.from_json(definition.value)
            known = self._known.get(scan_id)
            if known is None or known.scan != scan:
                self._forget(scan_id)
                known = Known(scan, ctl.value or {}, held=known.held if known else False)
            known.ctl = ctl.value or {}
            seen[scan_id] = known
        for scan_id, gone in self._known.items():
            if scan_id not in seen:
                await self._let_go(gone)
                self._forget(scan_id)
        self._known = seen
        self._refreshed_at = self.clock.monotonic()

    def _forget(self, scan_id: str) -> None:
        self._evaluated.pop(scan_id, None)
        self._windows.pop(scan_id, None)

    async def _hold(self, known: Known) -> bool:
        now = self.clock.monotonic()
        if not known.held or now - known.leased_at >= RENEW_S:
            known.held = await self.broker.lease(f"scan:{known.scan.scanId}", self.node_id, LEASE_S)
            known.leased_at = now
        return known.held

    async def _let_go(self, known: Known) -> None:
        if known.held:
            known.held = False
            await self.broker.release(f"scan:{known.scan.scanId}", self.node_id)

    async def _dequeue(self, known: Known) -> bool:
        """Take one on-demand request off the scan's queue; False when none is left."""
        took = False

        def take(ctl: dict[str, Any]) -> dict[str, Any]:
            nonlocal took
            queued = int(ctl.get("queued", 0) or 0)
            took = queued > 0
            return {**ctl, "queued": max(0, queued - 1)}

        ctl = await self.store.control(known.scan.scanId, take)
        known.ctl = ctl or {}
        return took

    # -- a cycle ----------------------------------------------------------------------------------

    async def cycle(self, scan: ScanDef, state: str = "running") -> dict[str, Any]:
        """Run one cycle of `scan` now; its last `scan:status` payload."""
        started = self.clock.monotonic()
        snapshot = await self.broker.snapshot(PRICES_LOG, ["prices"])
        prices = {str(p.get("symbol")): p.get("price") for p in snapshot.states.get("prices", [])}
        hashes_stored, stats_stored = await self.store.load(scan.scanId, "hashes", "stats")
        hashes: dict[str, str] = dict(hashes_stored.value or {})
        stats: dict[str, Any] = dict(stats_stored.value or {})
        versions = {"hashes": hashes_stored.version, "stats": stats_stored.version}
        number = int(stats.get("cycles", 0)) + 1
        counts = {"scanned": 0, "results": 0}
        status: dict[str, Any] = {}
        total = len(scan.symbols)
        for start in range(0, max(total, 1), CHUNK):
            pubs = self._chunk(scan, scan.symbols[start : start + CHUNK], prices, hashes, counts, number)
            last = start + CHUNK >= total
            ms = self.clock.wall_ms()
            status = {
                "scanId": scan.scanId,
                "state": state,
                "cycle": number,
                "scanned": counts["scanned"],
                "total": total,
                "results": counts["results"],
                "durationMs": round((self.clock.monotonic() - started) * 1000, 3),
                "complete": last,
                "timestamp": iso_timestamp(ms),
            }
            pubs.append(Publication("scan:status", status, scan.log, tick=True, state=("scans", scan.scanId)))
            writes = [StateWrite(scan_log(scan.scanId), "hashes", hashes or None, versions["hashes"])]
            if last:
                stats = {
                    "cycles": number,
                    "lastCycleMs": status["durationMs"],
                    "results": int(stats.get("results", 0)) + counts["results"],
                    "lastCycleAt": status["timestamp"],
                }
                writes.append(StateWrite(scan_log(scan.scanId), "stats", stats, versions["stats"]))
            try:
                events = await self.broker.submit(Batch(pubs, ms, writes=writes))
            except StateConflict:
                log.info("scan cycle abandoned: another node runs it", extra={"scan": scan.scanId})
                return status
            for write in writes:
                versions[write.name] += 1
            self.published(events)
            if not last:
                await asyncio.sleep(0)  # let the node breathe between chunks
        return status

    def _chunk(
        self,
        scan: ScanDef,
        symbols: list[str],
        prices: dict[str, Any],
        hashes: dict[str, str],
        counts: dict[str, int],
        number: int,
    ) -> list[Publication]:
        now = self.clock.monotonic()
        ms = self.clock.wall_ms()
        evaluated = self._evaluated.setdefault(scan.scanId, {})
        pubs: list[Publication] = []
        for symbol in symbols:
            last = evaluated.get(symbol)
            if last is not None and now - last < scan.minSymbolIntervalS:
                continue  # paced
            price = prices.get(symbol)
            if isinstance(price, bool) or not isinstance(price, int | float):
                continue  # no price yet
            evaluated[symbol] = now
            counts["scanned"] += 1
            value = self._value(scan, symbol, float(price), ms)
            if not holds(scan.kind, scan.threshold, value):
                hashes.pop(symbol, None)
                continue
            digest = result_hash(scan, symbol, value)
            if hashes.get(symbol) == digest:
                continue
            hashes[symbol] = digest
            counts["results"] += 1
            result = {
                "scanId": scan.scanId,
                "symbol": symbol,
                "value": round(value, 6),
                "price": price,
                "kind": scan.kind,
                "threshold": scan.threshold,
                "reason": reason(scan, value),
                "hash": digest,
                "cycle": number,
                "timestamp": iso_timestamp(ms),
            }
            pubs.append(Publication("scan:result", result, scan.log))
        return pubs

    def _value(self, scan: ScanDef, symbol: str, price: float, ms: int) -> float:
        if scan.kind != "pct_move" or scan.windowS is None:
            return price
        windows = self._windows.setdefault(scan.scanId, Windows())
        if windows.get(symbol, scan.windowS) is None:
            windows.require(symbol, {scan.windowS: False})
        windows.observe(symbol, ms / 1000, price, 0.0)
        series = windows.get(symbol, scan.windowS)
        assert series is not None
        return series.move(ms / 1000, price) or 0.0
