"""Wire formats: bytes in, bytes out, no sockets."""
