"""HTTP/1.1 over a bare socket, for what no client library sends: a request head whose body
comes later (or never), and the answer read byte for byte."""

from __future__ import annotations

import socket

from support.servers import ServerProcess


def post_head(
    server: ServerProcess,
    path: str,
    *,
    length: int | None,
    token: str | None = None,
    close: bool = False,
    content_type: str = "application/json",
) -> socket.socket:
    """A socket that has sent the head of a POST (`length` None: chunked), and no body yet."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Type: {content_type}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if close:
        lines.append("Connection: close")
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_head(sock: socket.socket, data: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lower-case names, the bytes read past the head)."""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body: (status, headers, the body and whatever
    followed it in the same reads)."""
    status, headers, body = read_head(sock)
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, f"closed inside the response body: {body!r}"
        body += chunk
    return status, headers, body
