"""The demo's alert rules and scan (SPEC 13): set up at startup unless already there (with
Redis they outlive the process), through the same stores as the HTTP APIs.

- alice: her first symbol 0.5% above and below its opening price, a 1% move within 60 s
  (warning), and an error when a position of hers on it loses more than 50;
- bob: a volume spike (the simulator's ticks have no volume: never fires, shows the kind),
  his second symbol 1% below its open, and P&L above 100;
- `momentum`: a public scan of every demo symbol for a 0.3% move within 30 s, every 5 s,
  each symbol at most every 5 s; its results stream on `/api/stream/scans/momentum`.
"""

from __future__ import annotations

import logging

from tickwire.demo.market import MarketSimulator
from tickwire.domain.alerting import Alerting
from tickwire.domain.rules import RuleError
from tickwire.domain.scan_defs import ScanExists, parse_scan

log = logging.getLogger("tickwire.demo")

MOMENTUM = "momentum"


def demo_rules(market: MarketSimulator) -> dict[str, list[dict[str, object]]]:
    symbols = market.symbols
    first, second = symbols[0], symbols[1 % len(symbols)]
    open_first, open_second = market.open_price(first), market.open_price(second)
    return {
        "alice": [
            {"kind": "price_above", "symbol": first, "threshold": round(open_first * 1.005, 2)},
            {"kind": "price_below", "symbol": first, "threshold": round(open_first * 0.995, 2)},
            {"kind": "pct_move", "symbol": first, "threshold": 1, "windowS": 60, "severity": "warning"},
            {"kind": "pnl_below", "symbol": first, "threshold": -50, "severity": "error"},
        ],
        "bob": [
            {"kind": "volume_spike", "symbol": second, "threshold": 3, "windowS": 60},
            {"kind": "price_below", "symbol": second, "threshold": round(open_second * 0.99, 2)},
            {"kind": "pnl_above", "symbol": second, "threshold": 100, "severity": "warning"},
        ],
    }


async def seed_alerting(alerting: Alerting, market: MarketSimulator) -> None:
    """The demo users' rules (for users without any) and the momentum scan (if missing)."""
    for user, rules in demo_rules(market).items():
        if await alerting.rules.rules_of(user):
            continue
        for body in rules:
            await alerting.rules.create(user, body)
    scan = {
        "scanId": MOMENTUM,
        "symbols": list(market.symbols),
        "condition": {"kind": "pct_move", "threshold": 0.3, "windowS": 30},
        "intervalS": 5,
        "minSymbolIntervalS": 5,
        "visibility": "public",
    }
    try:
        await alerting.scans.create(
            parse_scan(scan, creator="admin", now_ms=0, max_symbols=len(market.symbols))
        )
    except ScanExists:
        pass
    except RuleError as exc:  # e.g. TICKWIRE_SCAN_MAX reached
        log.warning("demo scan not created", extra={"error": str(exc)})
