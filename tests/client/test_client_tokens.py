"""Token rotation (client/credentials.py): a `token_provider`, sync or async, is asked before
every (re)connect; `auth:expired`, a 401 or a 4001 close turn into a reconnect with a fresh
token, resuming every stream by id, so no event is lost or doubled; without a provider an
expired token ends the client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support.servers import ServerProcess
from tickwire.client import Client, ClientEvent, ConnectionState, Credentials, StreamRefused, TransportError

ROTATION_S = 3  # token lifetime; JWT times are whole seconds, so each lives 2 to 3 s
ROTATION_RUN_S = float(os.environ.get("TICKWIRE_ROTATION_RUN_S", "60"))  # a minute of rotations
DRAIN_S = 30  # after the run: the last alerts arrive, the client closes
TTL = 2
FINAL = 1_000_000


# -- Credentials --------------------------------------------------------------------------------


def test_credentials_take_sync_and_async_providers() -> None:
    async def main() -> None:
        fixed = Credentials("t0")
        assert (
            not fixed.renewable
            and await fixed.refresh() == "t0"
            and fixed.header() == {"Authorization": "Bearer t0"}
        )
        counter = iter(range(10))
        sync = Credentials(None, lambda: f"s{next(counter)}")
        assert [await sync.refresh(), await sync.refresh()] == ["s0", "s1"] and sync.renewable

        async def fetch() -> str:
            await asyncio.sleep(0)
            return "a1"

        asynchronous = Credentials("old", fetch)
        assert await asynchronous.refresh() == "a1" and asynchronous.header() == {
            "Authorization": "Bearer a1"
        }
        anonymous = Credentials("old", lambda: "")
        assert await anonymous.refresh() is None and anonymous.header() == {}
        assert anonymous.refreshes == 1
        assert not anonymous.renewable  # no token to replace: a 401 is final

    asyncio.run(main())


def test_a_failing_provider_is_a_failed_attempt_not_a_crash() -> None:
    async def main() -> None:
        def broken() -> str:
            raise RuntimeError("auth service down")

        with pytest.raises(TransportError, match="auth service down"):
            await Credentials(None, broken).refresh()
        with pytest.raises(TransportError, match="not str"):
            await Credentials(None, lambda: 42).refresh()  # type: ignore[arg-type, return-value]

    asyncio.run(main())


# -- against a real server ----------------------------------------------------------------------


def provider_for(server: ServerProcess, user: str, kind: str, issued: list[str]) -> Callable[[], Any]:
    def sync() -> str:
        token = server.token(user, ttl=ROTATION_S)
        issued.append(token)
        return token

    async def asynchronous() -> str:
        await asyncio.sleep(0)
        return sync()

    return sync if kind == "sync" else asynchronous


async def publish_until(
    publish: Callable[..., Awaitable[list[str]]], kit: Any, user: str, stop: asyncio.Event
) -> int:
    """Publish alerts a0, a1, ... until `stop`, then the final one; how many before it."""
    n = 0
    while not stop.is_set():
        await publish(kit.alert(user, n))
        n += 1
        await asyncio.sleep(0.05)  # pacing only
    await publish(kit.alert(user, FINAL))
    return n


@pytest.mark.parametrize(
    ("transport", "kind", "option"),
    [("sse", "sync", "get_token"), ("ws", "async", "get_token"), ("poll", "sync", "token_provider")],
)
@pytest.mark.timeout(int(ROTATION_RUN_S + DRAIN_S) + 60)  # and the server's start, on a loaded machine
def test_a_token_rotating_every_3_s_loses_no_event_and_never_stops(
    server: ServerProcess, kit: Any, transport: str, kind: str, option: str
) -> None:
    """Tokens live 3 s (JWT times are whole seconds: 2 to 3 s) for ROTATION_RUN_S seconds
    (a minute by default; TICKWIRE_ROTATION_RUN_S shortens it, the assertions are the
    same): every alert arrives once, in order, the client never stops, and `get_token` is
    asked before each expiry. The WebSocket re-authenticates in place (no reconnect, no
    `auth:expired`); SSE responses end at `exp` and resume with the fresh token."""
    user = kit.uid("rotate")
    issued: list[str] = []
    alerts: list[str] = []
    expired: list[ClientEvent] = []
    states: list[str] = []

    async def main() -> tuple[int, Client]:
        options = {option: provider_for(server, user, kind, issued)}
        client = Client(server.url, ["alerts"], transport=transport, **options, **kit.FAST)
        client.on_state_change(lambda change: states.append(change.new.value))
        stop = asyncio.Event()
        async with client, kit.Publisher(server) as publish, asyncio.timeout(ROTATION_RUN_S + DRAIN_S):
            await client.ready()
            publishing = asyncio.create_task(publish_until(publish, kit, user, stop))
            asyncio.get_running_loop().call_later(ROTATION_RUN_S, stop.set)
            async for event in client.events():
                if event.type == "auth:expired":
                    expired.append(event)
                elif event.type == "alert:new":
                    alerts.append(event.data.alert_id)
                    if event.data.alert_id == f"a{FINAL}":
                        break
            assert client.state is ConnectionState.CONNECTED
            assert client.stats.resets == 0
            return await publishing, client

    published, client = asyncio.run(main())
    assert alerts == [f"a{n}" for n in range(published)] + [f"a{FINAL}"]  # no gap, no duplicate
    rotations = int(ROTATION_RUN_S / ROTATION_S)
    assert len(issued) >= rotations
    assert client.stats.token_refreshes >= rotations - 1  # asked before the expiry, not after it
    assert "closed" not in states[:-1]
    if transport == "ws":  # renewed on the open socket
        assert expired == [] and client.stats.reconnects == 0
    elif transport == "sse":  # the response ends at `exp`; the fresh token resumes it
        assert len(expired) >= rotations - 1
        assert all(e.is_control and e.id is None for e in expired)


@pytest.mark.parametrize("transport", ["sse", "ws", "poll"])
def test_a_refused_token_is_replaced_and_never_ends_the_client(
    server: ServerProcess, kit: Any, transport: str
) -> None:
    user = kit.uid("refused")
    calls: list[int] = []

    async def provider() -> str:
        calls.append(1)
        return "not-a-token" if len(calls) <= 2 else server.token(user)

    async def main() -> None:
        client = Client(
            server.url, ["alerts"], token_provider=provider, transport=transport, max_attempts=1, **kit.FAST
        )
        async with client, kit.Publisher(server) as publish, asyncio.timeout(20):
            await client.wait_for_state(ConnectionState.CONNECTED)
            await publish(kit.alert(user, 1))
            async for event in client.events():
                if event.type == "alert:new":
                    assert event.data["alertId"] == "a1"
                    break

    asyncio.run(main())
    assert len(calls) == 3


def test_without_a_provider_an_expired_token_ends_the_client(server: ServerProcess, kit: Any) -> None:
    user = kit.uid("fixed")

    async def collect(client: Client, seen: list[ClientEvent]) -> None:
        async for event in client.events():
            seen.append(event)

    async def main() -> list[ClientEvent]:
        client = Client(server.url, ["alerts"], token=server.token(user, ttl=TTL), **kit.FAST)
        seen: list[ClientEvent] = []
        async with client, asyncio.timeout(20):
            with pytest.raises(StreamRefused, match="401"):
                await collect(client, seen)
        return seen

    seen = asyncio.run(main())
    assert [e.type for e in seen] == ["connected", "auth:expired"]
