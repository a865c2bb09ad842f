"""The `tickwire` command: serve, token, publish, tail."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import click
import httpx
import orjson

from tickwire.config import MIN_SECRET_BYTES, Settings, load_settings
from tickwire.errors import ConfigError
from tickwire.node import Node
from tickwire.server.auth import ROLES, issue_token
from tickwire.wire.sse import SSEParser


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
def serve(config: str | None, **flags: Any) -> None:
    """Run a tickwire node."""
    import uvicorn

    from tickwire.logs import configure_logging
    from tickwire.server.app import create_app
    from tickwire.server.ws_protocol import PROTOCOL_MAX_SIZE, uvicorn_ws_protocol

    overrides = {k: v for k, v in flags.items() if v is not None}
    settings = _settings(config, overrides)
    configure_logging(settings.log_level)
    if settings.demo:
        from tickwire.demo import create_demo_app

        app = create_demo_app(settings)
    else:
        app = create_app(settings)
    app.state.on_startup.append(_gc_policy)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            ws=uvicorn_ws_protocol(),
            ws_max_size=PROTOCOL_MAX_SIZE,
            ws_ping_interval=None,  # the app sends its own ping frames (server/ws.py)
            ws_per_message_deflate=True,
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    _announce(settings)
    server.run()


async def _gc_policy(node: Node) -> None:
    from tickwire.server.gcpolicy import keep_gc_pauses_short

    node.spawn(keep_gc_pauses_short(), "tickwire-gc")


def _announce(settings: Settings) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    click.echo(f"tickwire listening on {url} (broker: {settings.broker})", err=True)
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


@main.command()
@click.argument("url")
@click.option("--transport", type=click.Choice(["sse"]), default="sse", show_default=True)
@click.option("--token", help="Session token [TICKWIRE_TOKEN].")
@click.option("--max-events", type=click.IntRange(1), help="Stop after this many events.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds.")
@click.option("--last-event-id", help="Resume after this id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event per line.")
def tail(
    url: str,
    transport: str,
    token: str | None,
    max_events: int | None,
    duration: float | None,
    last_event_id: str | None,
    as_json: bool,
) -> None:
    """Print the events of a stream URL, e.g. http://127.0.0.1:8080/api/stream/prices."""
    bearer = token or os.environ.get("TICKWIRE_TOKEN")
    try:
        count = asyncio.run(_tail(url, bearer, max_events, duration, last_event_id, as_json))
    except KeyboardInterrupt:
        return
    click.echo(f"{count} events", err=True)


async def _tail(
    url: str,
    token: str | None,
    max_events: int | None,
    duration: float | None,
    last_event_id: str | None,
    as_json: bool,
) -> int:
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    count = 0
    deadline = time.monotonic() + duration if duration else None
    parser = SSEParser()

    async def run() -> None:
        nonlocal count
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
            async with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    body = (await response.aread()).decode(errors="replace")
                    raise click.ClickException(f"HTTP {response.status_code}: {body}")
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        _print_event(event.event, event.id, event.data, as_json)
                        count += 1
                        if max_events is not None and count >= max_events:
                            return

    try:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        pass
    except httpx.HTTPError as exc:
        raise click.ClickException(f"stream failed: {exc}") from None
    return count


def _print_event(event: str, event_id: str | None, data: str, as_json: bool) -> None:
    if as_json:
        try:
            payload: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = data
        sys.stdout.write(orjson.dumps({"event": event, "id": event_id, "data": payload}).decode() + "\n")
    else:
        sys.stdout.write(f"{event} {event_id or '-'} {data}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
