"""Reference-counted subscriptions and batched WebSocket commands: the planning (pure) and
what actually goes over the wire (the proxy decodes the client's frames)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from support.proxy import FaultProxy
from support.servers import ServerProcess
from tickwire.client import Client, ConnectionState, StreamSpec, SubscriptionManager
from tickwire.client.subscriptions import command_symbols, symbol_steps, ws_commands


def test_references_share_one_subscription() -> None:
    changes: list[int] = []
    manager = SubscriptionManager(lambda: changes.append(1))
    a = manager.acquire(StreamSpec("prices", frozenset({"AAPL"})))
    b = manager.acquire(StreamSpec("prices", frozenset({"AAPL"})))
    assert manager.references("prices", "AAPL") == 2
    assert manager.wanted() == {"prices": StreamSpec("prices", frozenset({"AAPL"}))}
    assert len(changes) == 1  # the second reference changed nothing on the wire
    a.release()
    a.release()  # idempotent
    assert manager.wanted() == {"prices": StreamSpec("prices", frozenset({"AAPL"}))}
    assert len(changes) == 1
    b.release()
    assert manager.wanted() == {}
    assert len(changes) == 2


def test_a_reference_without_symbols_reads_every_symbol() -> None:
    manager = SubscriptionManager()
    manager.acquire(StreamSpec("prices", frozenset({"AAPL"})))
    whole = manager.acquire(StreamSpec("prices"))
    assert manager.wanted()["prices"].symbols is None
    whole.release()
    assert manager.wanted()["prices"].symbols == frozenset({"AAPL"})


def test_symbol_steps_change_at_most_100_symbols_each() -> None:
    old = frozenset(f"S{n}" for n in range(150))
    new = frozenset(f"S{n}" for n in range(120, 370))
    steps = symbol_steps(old, new, 100)
    current: frozenset[str] | None = old
    for step in steps:
        assert step is not None and current is not None
        assert len(step ^ current) <= 100
        current = step
    assert current == new
    assert len(steps) == 2 + 3  # 120 removed in 2 steps, 220 added in 3
    assert symbol_steps(old, old) == []


def test_commands_batch_streams_and_resume_where_they_can() -> None:
    current = {"orders": StreamSpec("orders"), "prices": StreamSpec("prices", frozenset({"A", "B"}))}
    wanted = {
        "orders": StreamSpec("orders"),
        "alerts": StreamSpec("alerts"),
        "prices": StreamSpec("prices", frozenset({"A"})),
    }
    last = {"alerts": "1700000000000-a", "prices": "1700000000000-p"}
    commands = ws_commands(current, wanted, last)
    assert commands == [
        {
            "type": "subscribe",
            "rid": "1",
            "streams": [{"stream": "alerts", "lastEventId": "1700000000000-a"}],
        },
        # Removing a symbol resumes; adding one starts fresh (new symbols need their current price).
        {
            "type": "subscribe",
            "rid": "2",
            "streams": [{"stream": "prices", "lastEventId": "1700000000000-p", "symbols": ["A"]}],
        },
    ]
    grow = ws_commands(wanted, {**wanted, "prices": StreamSpec("prices", frozenset({"A", "C"}))}, last)
    assert grow == [
        {"type": "subscribe", "rid": "1", "streams": [{"stream": "prices", "symbols": ["A", "C"]}]}
    ]
    gone = ws_commands(wanted, {"orders": StreamSpec("orders")}, last)
    assert gone == [{"type": "unsubscribe", "rid": "1", "streams": ["alerts", "prices"]}]
    many = {f"strategies/s{n}": StreamSpec(f"strategies/s{n}") for n in range(150)}
    batched = ws_commands({}, many, {})
    assert [len(c["streams"]) for c in batched] == [100, 50]


async def until(check: Callable[[], bool], within: float = 10) -> None:
    """Poll a condition of the test's own state (not a sleep standing in for an assertion)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the proxy's message list has no event to wait on
            await asyncio.sleep(0.01)


def subscribes(proxy: FaultProxy) -> list[dict[str, Any]]:
    return [
        m for m in proxy.ws_messages if isinstance(m, dict) and m.get("type") in ("subscribe", "unsubscribe")
    ]


def test_ref_counting_and_batching_on_the_wire(server: ServerProcess, kit: Any) -> None:
    symbols = [kit.sym() for _ in range(150)]

    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            client = Client(proxy.url, transport="ws", ws_compression=False, **kit.FAST)
            async with client:
                async with asyncio.timeout(10):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                first = client.subscribe("prices", ["AAPL"])
                second = client.subscribe("prices", ["AAPL"])  # shares the first's subscription
                await until(lambda: len(subscribes(proxy)) == 1)
                assert subscribes(proxy)[0]["streams"] == [{"stream": "prices", "symbols": ["AAPL"]}]
                assert client.references("prices", "AAPL") == 2
                first.release()
                bulk = client.subscribe("prices", symbols)  # 150 new symbols: two steps of <= 100
                await until(lambda: len(subscribes(proxy)) == 3)
                second.release()
                await until(lambda: len(subscribes(proxy)) == 4)
                bulk.release()
                await until(lambda: len(subscribes(proxy)) == 5)
                sent = subscribes(proxy)
                assert [command_symbols(c) for c in sent[:4]] == [1, 101, 151, 150]
                added = [len(set(_symbols(b)) - set(_symbols(a))) for a, b in itertools.pairwise(sent[:4])]
                assert all(n <= 100 for n in added), added
                assert set(_symbols(sent[2])) == {"AAPL", *symbols}
                assert set(_symbols(sent[3])) == set(symbols)  # AAPL's last reference went
                assert sent[4] == {"type": "unsubscribe", "rid": sent[4]["rid"], "streams": ["prices"]}

    asyncio.run(main())


def _symbols(command: dict[str, Any]) -> list[str]:
    return [
        s for entry in command.get("streams", []) if isinstance(entry, dict) for s in entry.get("symbols", [])
    ]


def test_resubscribe_with_positions_and_queue_changes_while_disconnected(
    server: ServerProcess, kit: Any
) -> None:
    user = kit.uid()
    symbol = kit.sym()

    async def main() -> None:
        async with FaultProxy(server.port) as proxy:
            client = Client(
                proxy.url,
                ["orders", f"prices?symbols={symbol}"],
                token=server.token(user),
                transport="ws",
                ws_compression=False,
                fallback_after=0,
                **kit.FAST,
            )
            async with client, kit.Publisher(server) as publish:
                async with asyncio.timeout(10):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                    await publish(kit.order(user, "o1"), kit.price(symbol, 10.0))
                    async for event in client.events():
                        if event.type == "price:update" and not event.is_snapshot:
                            break
                positions = client.last_event_ids()
                assert positions["orders"] and positions["prices"]
                # Go offline, change subscriptions while disconnected, come back.
                await proxy.stop_listening()
                proxy.cut_all()
                async with asyncio.timeout(10):
                    await client.wait_for_state(ConnectionState.RECONNECTING)
                alerts = client.subscribe("alerts")
                before = len(subscribes(proxy))
                await proxy.resume_listening()
                async with asyncio.timeout(10):
                    await client.wait_for_state(ConnectionState.CONNECTED)
                await until(lambda: len(subscribes(proxy)) > before)
                resubscribe = subscribes(proxy)[before]
                entries = {e["stream"]: e for e in resubscribe["streams"]}
                assert entries["orders"]["lastEventId"] == positions["orders"]
                assert entries["prices"]["lastEventId"] == positions["prices"]
                assert entries["prices"]["symbols"] == [symbol]
                assert "lastEventId" not in entries["alerts"]  # queued while offline, new: fresh
                assert len(subscribes(proxy)) == before + 1  # one batch, nothing replayed command by command
                alerts.release()

    asyncio.run(main())
