"""The ASGI server: HTTP endpoints and SSE streams over the node."""
