"""The streaming core: events, logs, state, outboxes and the hub.

Nothing in this package performs I/O or imports asyncio: it is driven by adapters
(SSE, WebSocket, poll) and by a broker, and reads time from an injected clock, so
every rule it enforces can be tested synchronously.
"""
