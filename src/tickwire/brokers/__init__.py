"""Brokers keep logs, history and keyed state, and fan events out to nodes."""

from tickwire.brokers.base import Broker, BrokerSink, History, Publication, Snapshot
from tickwire.brokers.memory import MemoryBroker

__all__ = ["Broker", "BrokerSink", "History", "MemoryBroker", "Publication", "Snapshot"]
