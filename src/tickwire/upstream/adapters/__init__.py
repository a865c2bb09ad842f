"""One adapter per provider kind (base.py is the interface)."""

from __future__ import annotations

from collections.abc import Mapping

from tickwire.upstream.adapters.alpaca import AlpacaAdapter
from tickwire.upstream.adapters.base import Adapter
from tickwire.upstream.adapters.birdeye import BirdeyeAdapter
from tickwire.upstream.adapters.finnhub import FinnhubAdapter
from tickwire.upstream.adapters.helius import HeliusAdapter
from tickwire.upstream.adapters.jsonmap import JsonAdapter
from tickwire.upstream.adapters.tickwire import TickwireAdapter
from tickwire.upstream.config import UpstreamConfig

ADAPTERS: dict[str, type[Adapter]] = {
    a.kind: a
    for a in (TickwireAdapter, FinnhubAdapter, AlpacaAdapter, BirdeyeAdapter, HeliusAdapter, JsonAdapter)
}

__all__ = ["ADAPTERS", "Adapter", "make_adapter"]


def make_adapter(config: UpstreamConfig, env: Mapping[str, str] | None = None) -> Adapter:
    """The adapter of `config.kind`; ConfigError when its options or secrets are wrong."""
    return ADAPTERS[config.kind](config, env)
