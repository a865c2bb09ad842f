"""The `tickwire` command: serve, token, publish, tail, record."""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click
import httpx
import orjson

from tickwire.cli_stream import record, tail
from tickwire.config import MIN_SECRET_BYTES, Settings, load_settings
from tickwire.errors import ConfigError
from tickwire.node import Node
from tickwire.server.auth import ROLES, issue_token


def _settings(config: str | None, overrides: dict[str, Any]) -> Settings:
    try:
        return load_settings(config, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tickwire")
def main() -> None:
    """tickwire: real-time streams for trading applications."""


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML settings file.")
@click.option("--host", help="Listen address [TICKWIRE_HOST, 127.0.0.1].")
@click.option("--port", type=int, help="Listen port [TICKWIRE_PORT, 8080].")
@click.option("--broker", help="memory or redis://host:port/db [TICKWIRE_BROKER].")
@click.option("--demo", is_flag=True, default=None, help="Run the market simulator and demo users.")
@click.option("--throttle-ms", type=int, help="Conflation window for ticks [TICKWIRE_THROTTLE_MS, 100].")
@click.option("--connect-rate", type=int, help="Connection attempts per minute per IP, 0 = off.")
@click.option("--max-conns-per-user", type=int, help="Concurrent connections per user [10].")
@click.option("--cors-origins", help="Comma-separated allowed origins [*].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Processes serving the port (SO_REUSEPORT); more than one needs --broker redis://... [1].",
)
@click.option(
    "--replay",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve this recording (tickwire record) as a deterministic fixture server instead.",
)
def serve(config: str | None, replay: str | None, **flags: Any) -> None:
    """Run a tickwire node (or, with --replay, a fixture server for a recording)."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    if replay is not None:
        _serve_replay(replay, config, overrides)
        return
    settings = _settings(config, overrides)
    if settings.workers > 1:
        from tickwire.logs import configure_logging
        from tickwire.workers import Supervisor

        configure_logging(settings.log_level)
        sys.exit(Supervisor(settings, run_node, announce=_announce).serve())
    _announce(settings)
    run_node(settings)


def run_node(settings: Settings, sockets: list[socket.socket] | None = None) -> None:
    """Serve one node until SIGTERM/SIGINT, on `sockets` when given (a worker's), else on
    settings.host and port."""
    from tickwire.logs import configure_logging
    from tickwire.server.app import create_app

    configure_logging(settings.log_level)
    if settings.demo:
        from tickwire.demo import create_demo_app

        app = create_demo_app(settings)
    else:
        app = create_app(settings)
    app.state.on_startup.append(_gc_policy)
    uv_config = uvicorn_config(app, settings)
    _handing_over(uv_config, app.state.close_connections).run(sockets)


def uvicorn_config(app: Any, settings: Settings) -> Any:
    """How `tickwire serve` runs `app` (a tickwire app, whose node counts refusals) on uvicorn."""
    import uvicorn

    from tickwire.drivers.uvicorn_ws import PROTOCOL_MAX_SIZE, uvicorn_ws_protocol

    rejected = app.state.node.metrics.rejected
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=_http_protocol(settings, lambda reason: rejected.labels(reason).inc()),
        ws=uvicorn_ws_protocol(native=settings.driver == "native"),
        ws_max_size=PROTOCOL_MAX_SIZE,
        ws_ping_interval=None,  # the app sends its own ping frames (server/ws.py)
        ws_per_message_deflate=True,
        lifespan="on",
        access_log=False,
        log_level="warning",
        # What is still open after the node closed its connections (a peer that does not
        # read, a publish in flight) gets the same grace again, then is cut off.
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
    )


def _http_protocol(settings: Settings, on_refused: Callable[[str], None] | None = None) -> Any:
    """uvicorn's HTTP protocol with the bounds of `settings` on request heads (size, time)
    and on open connections per client IP (drivers/uvicorn_http.py), handing SSE responses
    to the native driver unless TICKWIRE_DRIVER=asgi."""
    from tickwire.drivers.uvicorn_http import ConnectionGuard, uvicorn_http_protocol

    guard = ConnectionGuard(
        max_head_bytes=settings.max_header_bytes,
        head_timeout_s=settings.header_timeout_s,
        max_conns_per_ip=settings.max_conns_per_ip,
        on_refused=on_refused,
    )
    return uvicorn_http_protocol(guard, native=settings.driver == "native")


def _handing_over(config: Any, close_connections: Callable[[], Awaitable[int]]) -> Any:
    """A uvicorn server that, on SIGTERM, stops accepting and has the node close its
    connections (flushed SSE responses end, WebSockets get 1001) at once, so clients
    reconnect elsewhere and resume by id. uvicorn alone only sends the lifespan's shutdown
    after every connection ended, and open streams never end by themselves."""
    import uvicorn

    class HandingOverServer(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in getattr(self, "servers", ()):
                server.close()  # stop accepting (uvicorn does it again: harmless)
            try:
                await close_connections()
            except Exception:  # never keep uvicorn from shutting down
                logging.getLogger("tickwire.cli").exception("closing the connections failed")
            await super().shutdown(sockets)

    return HandingOverServer(config)


def _serve_replay(path: str, config: str | None, overrides: dict[str, Any]) -> None:
    import uvicorn

    from tickwire.client.replay import create_replay_app

    if not (overrides.get("secret") or os.environ.get("TICKWIRE_SECRET")):
        overrides = {**overrides, "secret": "replay-" + "0" * MIN_SECRET_BYTES}  # no auth in replays
    settings = _settings(config, overrides)
    try:
        app = create_replay_app(
            path, prefix=settings.prefix, keepalive_s=settings.keepalive_s, retry_ms=settings.retry_ms
        )
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"cannot replay {path}: {exc}") from None
    click.echo(f"tickwire replaying {path} on http://{settings.host}:{settings.port}", err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=_http_protocol(settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,  # open streams only wait for keepalives: do not wait for them
    )


async def _gc_policy(node: Node) -> None:
    from tickwire.server.gcpolicy import keep_gc_pauses_short

    node.spawn(keep_gc_pauses_short(), "tickwire-gc")


def _announce(settings: Settings) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    click.echo(f"tickwire listening on {url} (broker: {settings.broker}{workers})", err=True)
    if settings.demo:
        click.echo(f"demo: open {url}/?user=alice in a browser (demo users: alice, bob, admin)", err=True)
        if not os.environ.get("TICKWIRE_SECRET"):
            click.echo(f"demo: generated TICKWIRE_SECRET={settings.secret}", err=True)


def _secret(secret: str | None, config: str | None) -> str:
    found = secret or os.environ.get("TICKWIRE_SECRET")
    if not found and config:
        found = _settings(config, {}).secret
    if not found:
        raise click.UsageError("no secret: pass --secret or set TICKWIRE_SECRET (the server's JWT secret)")
    if len(found.encode()) < MIN_SECRET_BYTES:
        raise click.UsageError(
            f"the secret must be at least {MIN_SECRET_BYTES} bytes (the server refuses shorter)"
        )
    return found


@main.command()
@click.option("--user", required=True, help="User id (the token's `sub`).")
@click.option("--role", "roles", multiple=True, type=click.Choice(sorted(ROLES)), help="Role (repeatable).")
@click.option("--ttl", type=click.IntRange(1, 366 * 86400), default=3600, show_default=True, help="Seconds.")
@click.option("--secret", help="JWT secret [TICKWIRE_SECRET].")
@click.option("--config", type=click.Path(dir_okay=False), help="YAML settings file holding `secret`.")
def token(user: str, roles: tuple[str, ...], ttl: int, secret: str | None, config: str | None) -> None:
    """Print a session token (JWT HS256) for USER."""
    click.echo(issue_token(_secret(secret, config), user, roles, ttl))


def _token(token: str | None, secret: str | None, user: str, roles: tuple[str, ...]) -> str | None:
    if token:
        return token
    if os.environ.get("TICKWIRE_TOKEN"):
        return os.environ["TICKWIRE_TOKEN"]
    if secret or os.environ.get("TICKWIRE_SECRET"):
        return issue_token(_secret(secret, None), user, roles, 300)
    return None


@main.command()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="Server base URL.")
@click.option("--type", "type_", help="Event type, e.g. order:update (with --data).")
@click.option("--user", help="User the event belongs to (user events).")
@click.option("--data", help="The event's data as a JSON object.")
@click.option("--file", "file", type=click.File("rb"), help="JSON event or array of events ('-' = stdin).")
@click.option("--token", help="Publisher token [TICKWIRE_TOKEN]; minted from TICKWIRE_SECRET when absent.")
@click.option("--secret", help="JWT secret to mint a publisher token [TICKWIRE_SECRET].")
def publish(
    url: str,
    type_: str | None,
    user: str | None,
    data: str | None,
    file: Any,
    token: str | None,
    secret: str | None,
) -> None:
    """Publish one event (--type/--data) or a file of events; prints the ids."""
    if file is not None:
        body = file.read()
    elif type_ is not None:
        try:
            payload = orjson.loads(data or "{}")
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
        item: dict[str, Any] = {"type": type_, "data": payload}
        if user:
            item["user"] = user
        body = orjson.dumps(item)
    else:
        raise click.UsageError("give --type and --data, or --file")
    bearer = _token(token, secret, "cli-publisher", ("publisher",))
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        response = httpx.post(url.rstrip("/") + "/api/publish", content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    if response.status_code != 200:
        raise click.ClickException(f"HTTP {response.status_code}: {response.text}")
    for event_id in response.json()["ids"]:
        click.echo(event_id)


main.add_command(tail)
main.add_command(record)


if __name__ == "__main__":
    main()
