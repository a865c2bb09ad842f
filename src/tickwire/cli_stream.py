"""The `tail` and `record` commands: the resilient client (tickwire.client) on one stream
address, its settings from a YAML file and flags."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import click
import httpx
import orjson


def _stream_options(command: Any) -> Any:
    """The options `tail` and `record` share: the stream, and the client's settings (a YAML
    file of `ClientConfig` keys, flags on top)."""
    for option in reversed(
        [
            click.option(
                "--transport",
                type=click.Choice(["sse", "ws", "poll"]),
                default=None,
                help="sse: HTTP streams; ws: the server's /ws socket; poll: long-polling [sse].",
            ),
            click.option("--token", help="Session token [TICKWIRE_TOKEN]."),
            click.option("--max-events", type=click.IntRange(1), help="Stop after this many events."),
            click.option(
                "--duration", type=click.FloatRange(0, min_open=True), help="Stop after this many seconds."
            ),
            click.option("--last-event-id", help="Resume after this id."),
            click.option(
                "--config",
                "client_config",
                type=click.Path(exists=True, dir_okay=False),
                help="YAML file of client settings (the keys of ClientConfig); flags win.",
            ),
            click.option("--backoff-initial", type=click.FloatRange(0), help="First reconnect delay, s [1]."),
            click.option("--backoff-max", type=click.FloatRange(0), help="Longest reconnect delay, s [16]."),
            click.option(
                "--max-attempts", type=int, help="Failed attempts in a row before giving up [-1: never]."
            ),
            click.option(
                "--connect-timeout",
                type=click.FloatRange(0, min_open=True),
                help="Give up when the first connection takes longer, s.",
            ),
            click.option(
                "--fallback-after",
                type=click.IntRange(0),
                help="Streaming failures before polling [5]; 0 = never.",
            ),
            click.option(
                "--fallback-probe",
                type=click.FloatRange(0, min_open=True),
                help="Try streaming again this often while polling, s [30].",
            ),
            click.option(
                "--queue-capacity", type=click.IntRange(1), help="Events waiting for the consumer [10000]."
            ),
            click.option(
                "--inbox-capacity", type=click.IntRange(1), help="Events read but not yet handled [4096]."
            ),
        ]
    ):
        command = option(command)
    return command


def _client_config(options: dict[str, Any]) -> Any:
    """`ClientConfig` from --config and the flags (flags win; unset flags keep the file's)."""
    import dataclasses

    from tickwire.client.backoff import BackoffPolicy
    from tickwire.client.config import ClientConfig, load_client_config

    flags = {
        "transport": options.get("transport"),
        "max_attempts": options.get("max_attempts"),
        "first_connect_timeout_s": options.get("connect_timeout"),
        "fallback_after": options.get("fallback_after"),
        "fallback_probe_s": options.get("fallback_probe"),
        "queue_capacity": options.get("queue_capacity"),
        "inbox_capacity": options.get("inbox_capacity"),
    }
    path = options.get("client_config")
    try:
        config = load_client_config(path, **flags) if path else ClientConfig.from_mapping({}, **flags)
        initial, top = options.get("backoff_initial"), options.get("backoff_max")
        if initial is not None or top is not None:
            base = config.backoff
            initial = base.initial if initial is None else initial
            top = max(initial, base.max) if top is None else top
            config = dataclasses.replace(
                config, backoff=BackoffPolicy(initial, top, base.factor, base.jitter)
            )
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    return config


@click.command()
@click.argument("url")
@_stream_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event per line.")
def tail(
    url: str,
    token: str | None,
    max_events: int | None,
    duration: float | None,
    last_event_id: str | None,
    as_json: bool,
    **client_options: Any,
) -> None:
    """Print the events of a stream URL, e.g. http://127.0.0.1:8080/api/stream/prices.

    Runs the resilient client: it reconnects with backoff, resumes, drops duplicates, repairs
    gaps and falls back to polling; state changes go to stderr. Client settings come from
    --config (a YAML file with the keys of ClientConfig) and the flags."""

    def show(event: Any) -> bool:
        _print_event(event.type, event.id, event.raw, as_json, event.stream)
        return True

    config = _client_config(client_options)
    count = _run_client(url, config, token, max_events, duration, last_event_id, show)
    click.echo(f"{count} events", err=True)


@click.command()
@click.argument("url")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, writable=True), help="JSONL file."
)
@_stream_options
def record(
    url: str,
    out: str,
    token: str | None,
    max_events: int | None,
    duration: float | None,
    last_event_id: str | None,
    **client_options: Any,
) -> None:
    """Record the events of a stream URL to a JSON Lines file (replay it with
    `tickwire serve --replay FILE`). Control events (connected, resets) are not recorded;
    --max-events counts recorded events."""
    from tickwire.client.replay import write_event

    config = _client_config(client_options)
    with open(out, "wb") as f:

        def keep(event: Any) -> bool:
            if write_event(f, event):
                f.flush()
                return True
            return False

        count = _run_client(url, config, token, max_events, duration, last_event_id, keep)
    click.echo(f"{count} events recorded to {out}", err=True)


def split_stream_url(url: str) -> tuple[str, str, str]:
    """`http://h:p/api/stream/orders?x=1` -> (`http://h:p`, `/api/stream`, `orders?x=1`)."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise click.BadParameter(f"not an http(s) stream address: {url}", param_hint="URL")
    base = f"{parsed.scheme}://{parsed.netloc.decode()}"
    path = parsed.path.rstrip("/")
    head, sep, rest = path.partition("/strategies/")
    if sep:
        prefix, stream = head, "strategies/" + rest
    else:
        prefix, _, stream = path.rpartition("/")
    if not stream:
        raise click.BadParameter(f"no stream in {url} (e.g. {base}/api/stream/orders)", param_hint="URL")
    query = parsed.query.decode()
    return base, prefix or "/", stream + (f"?{query}" if query else "")


def _run_client(
    url: str,
    config: Any,
    token: str | None,
    max_events: int | None,
    duration: float | None,
    last_event_id: str | None,
    handle: Any,
) -> int:
    """Run the client on one stream until --max-events / --duration; the events handled."""
    from tickwire.client import Client, ClientError, StreamSpec

    base, prefix, stream = split_stream_url(url)
    spec = StreamSpec.parse(stream)
    bearer = token or os.environ.get("TICKWIRE_TOKEN") or None
    count = 0

    async def run() -> None:
        nonlocal count
        client = Client(
            base,
            [spec],
            config=config,
            token=bearer or config.token,
            prefix=prefix,
            last_event_ids={spec.key: last_event_id} if last_event_id else None,
        )
        client.on_state_change(lambda change: click.echo(f"[{change.new.value}] {change.reason}", err=True))
        try:
            async with asyncio.timeout(duration), client:
                async for event in client.events():
                    if handle(event):
                        count += 1
                        if max_events is not None and count >= max_events:
                            return
        except TimeoutError:
            pass

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    return count


def _print_event(
    event: str, event_id: str | None, data: Any, as_json: bool, stream: str | None = None
) -> None:
    if as_json:
        item: dict[str, Any] = {"event": event, "id": event_id, "data": data}
        if stream:
            item["stream"] = stream
        sys.stdout.write(orjson.dumps(item).decode() + "\n")
    else:
        text = data if isinstance(data, str) else orjson.dumps(data).decode()
        sys.stdout.write(f"{event} {event_id or '-'} {text}\n")
    sys.stdout.flush()
