"""Scans (SPEC 13): their definitions, validation, and where they live in the broker.

A scan runs one condition of the rule library (`price_above`, `price_below`, `pct_move`;
a scan samples current prices, so it has neither every tick for `volume_spike` nor a
user's positions for the P&L kinds) over a universe of symbols every `intervalS`.

Each scan is processor state on a log of its own, `scandef:{scanId}` (never expiring):
`def` (the definition), `ctl` (`state` running|stopped and `queued` on-demand cycles, which
the API changes), `stats` (cycles, results, last duration; the runner writes them) and
`hashes` (symbol -> hash of its last published result; written with the results, so a
new runner after a handover does not publish them again). The set `scans` lists the ids.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tickwire.brokers.base import Batch, Broker, IndexChange, StateWrite, Stored
from tickwire.core.clock import Clock
from tickwire.core.event import USER_ID, user_log
from tickwire.core.streams import Principal
from tickwire.domain.catalog import SCANS_LOG
from tickwire.domain.rules import DEFAULT_WINDOW_S, MAX_WINDOW_S, SYMBOL, JsonRecord, RuleError
from tickwire.errors import BrokerUnavailable, StateConflict, StreamError

SCAN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SCAN_KINDS = ("price_above", "price_below", "pct_move")
REGISTRY = "scans"
FIELDS = ("scanId", "symbols", "condition", "intervalS", "minSymbolIntervalS", "visibility", "user", "round")
ATTEMPTS = 8


def scan_log(scan_id: str) -> str:
    return f"scandef:{scan_id}"


@dataclass(slots=True)
class ScanDef(JsonRecord):
    scanId: str  # camelCase: the names of the API and of the stored JSON
    symbols: list[str]
    kind: str
    threshold: float
    windowS: float | None = None
    intervalS: float = 60.0
    minSymbolIntervalS: float = 0.0
    visibility: str = "public"
    user: str | None = None  # the owner of a user scan (its events go to their log)
    round: int = 2  # decimals of the value in a result's hash (dedup)
    createdMs: int = 0

    def public(self) -> dict[str, Any]:
        out = self.to_json()
        out["condition"] = {"kind": out.pop("kind"), "threshold": out.pop("threshold")}
        window = out.pop("windowS")
        if window is not None:
            out["condition"]["windowS"] = window
        return out

    @property
    def log(self) -> str:
        """Where its events go."""
        return SCANS_LOG if self.visibility == "public" or self.user is None else user_log(self.user)


def parse_scan(body: Any, *, creator: str, now_ms: int, max_symbols: int) -> ScanDef:
    """A scan from a POST /api/scans body; `RuleError` names the bad field."""
    if not isinstance(body, dict):
        raise RuleError("the body must be a JSON object describing the scan")
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        raise RuleError(f"unknown field(s) {', '.join(unknown)[:200]}: expected {', '.join(FIELDS)}")
    scan_id = body.get("scanId")
    if not isinstance(scan_id, str) or not SCAN_ID.fullmatch(scan_id):
        raise RuleError("`scanId` must be 1-64 of A-Z a-z 0-9 . _ -")
    symbols = body.get("symbols")
    if not isinstance(symbols, list) or not symbols or len(symbols) > max_symbols:
        raise RuleError(f"`symbols` must be a list of 1 to {max_symbols} symbols")
    for symbol in symbols:
        if not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
            raise RuleError("`symbols`: each must be 1-32 of A-Z a-z 0-9 . _ : / ^ = -")
    kind, threshold, window = _condition(body.get("condition"))
    visibility = body.get("visibility", "public")
    if visibility not in ("public", "user"):
        raise RuleError("`visibility` must be public or user")
    user = body.get("user", creator)
    if not isinstance(user, str) or not USER_ID.fullmatch(user):
        raise RuleError("`user` must be a user id")
    interval = _number(body.get("intervalS", 60), "intervalS", 0.1, 86_400)
    return ScanDef(
        scan_id,
        list(dict.fromkeys(symbols)),
        kind,
        threshold,
        window,
        interval,
        _number(body.get("minSymbolIntervalS", 0), "minSymbolIntervalS", 0, 86_400),
        visibility,
        user if visibility == "user" else None,
        int(_number(body.get("round", 2), "round", 0, 8)),
        now_ms,
    )


def _condition(raw: Any) -> tuple[str, float, float | None]:
    if not isinstance(raw, dict):
        raise RuleError(
            '`condition` must be an object like {"kind": "pct_move", "threshold": 2, "windowS": 300}'
        )
    unknown = sorted(str(k) for k in raw if k not in ("kind", "threshold", "windowS"))
    if unknown:
        raise RuleError(f"`condition`: unknown field(s) {', '.join(unknown)[:200]}")
    kind = raw.get("kind")
    if kind not in SCAN_KINDS:
        raise RuleError(f"`condition.kind` must be one of {', '.join(SCAN_KINDS)}")
    threshold = _number(raw.get("threshold"), "condition.threshold", -math.inf, math.inf)
    if kind == "pct_move" and threshold <= 0:
        raise RuleError("`condition.threshold` of pct_move must be above 0")
    window = raw.get("windowS")
    if kind != "pct_move":
        if window is not None:
            raise RuleError("`condition.windowS` applies to pct_move only")
        return kind, threshold, None
    return (
        kind,
        threshold,
        _number(window if window is not None else DEFAULT_WINDOW_S, "condition.windowS", 1, MAX_WINDOW_S),
    )


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"`{name}` must be a finite number")
    if not low <= value <= high:
        raise RuleError(f"`{name}` must be between {low:g} and {high:g}")
    return float(value)


class ScanExists(RuleError):
    """A scan with that id exists."""


class ScanStore:
    """Scans in the broker: what the API changes and the runner reads."""

    def __init__(self, broker: Broker, clock: Clock, *, queue_bound: int = 100, max_scans: int = 100) -> None:
        self.broker = broker
        self.clock = clock
        self.queue_bound = queue_bound
        self.max_scans = max_scans
        self.changed: Callable[[], None] = lambda: None

    async def ids(self) -> list[str]:
        return sorted(await self.broker.members(REGISTRY))

    async def load(self, scan_id: str, *names: str) -> list[Stored]:
        return await self.broker.load([(scan_log(scan_id), name) for name in names])

    async def get(self, scan_id: str) -> ScanDef | None:
        (stored,) = await self.load(scan_id, "def")
        return ScanDef.from_json(stored.value) if stored.value is not None else None

    async def create(self, scan: ScanDef, *, running: bool = True) -> None:
        if len(await self.ids()) >= self.max_scans:
            raise RuleError(f"at most {self.max_scans} scans: delete one first")
        log = scan_log(scan.scanId)
        stored = await self.load(scan.scanId, "def", "ctl", "stats", "hashes")
        if stored[0].value is not None:
            raise ScanExists(f"scan {scan.scanId} exists: delete it first")
        values: list[dict[str, Any] | None] = [
            scan.to_json(),
            {"state": "running" if running else "stopped", "queued": 0},
            None,
            None,
        ]
        writes = [
            StateWrite(log, n, v, s.version)
            for n, v, s in zip(("def", "ctl", "stats", "hashes"), values, stored, strict=True)
        ]
        await self._submit(writes, [IndexChange(REGISTRY, scan.scanId, True)])

    async def delete(self, scan_id: str) -> bool:
        stored = await self.load(scan_id, "def", "ctl", "stats", "hashes")
        if stored[0].value is None:
            return False
        names = ("def", "ctl", "stats", "hashes")
        writes = [
            StateWrite(scan_log(scan_id), n, None, s.version) for n, s in zip(names, stored, strict=True)
        ]
        await self._submit(writes, [IndexChange(REGISTRY, scan_id, False)])
        return True

    async def control(
        self, scan_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Apply `change` to the scan's `ctl` (versioned, retried); the new ctl, None if no scan."""
        for _attempt in range(ATTEMPTS):
            definition, ctl = await self.load(scan_id, "def", "ctl")
            if definition.value is None:
                return None
            new = change(dict(ctl.value or {"state": "stopped", "queued": 0}))
            try:
                await self._submit([StateWrite(scan_log(scan_id), "ctl", new, ctl.version)], [])
            except StateConflict:
                continue
            return new
        raise BrokerUnavailable("the scan's state kept changing under this request: retry")

    async def enqueue(self, scan_id: str) -> tuple[int, bool] | None:
        """Queue an on-demand cycle: (requests queued now, False when the queue was full and
        this one was refused); None when there is no such scan."""
        full = False

        def add(ctl: dict[str, Any]) -> dict[str, Any]:
            nonlocal full
            queued = int(ctl.get("queued", 0) or 0)
            full = queued >= self.queue_bound
            return ctl if full else {**ctl, "queued": queued + 1}

        ctl = await self.control(scan_id, add)
        return None if ctl is None else (int(ctl["queued"]), not full)

    async def status(self, scan_id: str) -> dict[str, Any] | None:
        definition, ctl, stats = await self.load(scan_id, "def", "ctl", "stats")
        if definition.value is None:
            return None
        c, s = ctl.value or {}, stats.value or {}
        return {
            "scanId": scan_id,
            "state": c.get("state", "stopped"),
            "cycles": s.get("cycles", 0),
            "lastCycleMs": s.get("lastCycleMs"),
            "results": s.get("results", 0),
            "queued": c.get("queued", 0),
        }

    async def stream_log(self, scan_id: str, principal: Principal) -> str:
        """The log `principal` reads scan `scan_id` on (the scans stream's item check)."""
        scan = await self.get(scan_id)
        if scan is None:
            raise StreamError(404, "Scan not found")
        if scan.user is not None and scan.user != principal.user and not principal.is_admin:
            raise StreamError(403, "This scan belongs to another user")
        return scan.log

    async def _submit(self, writes: list[StateWrite], index: list[IndexChange]) -> None:
        await self.broker.submit(Batch([], self.clock.wall_ms(), writes=writes, index=index))
        self.changed()
