"""The WebSocket transport (SPEC section 6): handshake (endpoint.py), session (session.py),
commands (commands.py) and ping frames (pings.py)."""

from tickwire.server.ws.endpoint import WebSocketEndpoint

__all__ = ["WebSocketEndpoint"]
