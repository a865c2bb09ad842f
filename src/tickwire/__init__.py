"""tickwire: a real-time streaming backbone for trading applications.

from tickwire import Settings, create_app, load_settings
app = create_app(load_settings())          # an ASGI app, or mount it in yours
await app.state.node.publish([...])         # publish in-process
"""

from tickwire.brokers import Broker, MemoryBroker
from tickwire.config import Settings, load_settings
from tickwire.core.clock import Clock, FakeClock, SystemClock
from tickwire.core.event import Event
from tickwire.core.streams import Principal
from tickwire.errors import BrokerUnavailable, ConfigError, PublishError, StreamError, TickwireError
from tickwire.node import Node
from tickwire.pipeline import PublishRequest, parse_publish_body
from tickwire.server.app import create_app
from tickwire.server.auth import issue_token, verify_token

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Clock",
    "ConfigError",
    "Event",
    "FakeClock",
    "MemoryBroker",
    "Node",
    "Principal",
    "PublishError",
    "PublishRequest",
    "Settings",
    "StreamError",
    "SystemClock",
    "TickwireError",
    "create_app",
    "issue_token",
    "load_settings",
    "parse_publish_body",
    "verify_token",
]

__version__ = "0.1.0"
