"""Per-stream cursors (gaps.py), fed event by event: duplicates, stale keyed values, holes in
the sequence numbers of each key, resets and opaque ids."""

from __future__ import annotations

from tickwire.client.events import WireEvent
from tickwire.client.gaps import StreamCursor, Verdict
from tickwire.core.ids import Position, format_id

EPOCH = 77


def eid(offset: int, tick: int, epoch: int = EPOCH) -> str:
    return format_id(1_700_000_000_000 + tick, Position(epoch, offset, tick))


def feed(
    cursor: StreamCursor,
    type_: str,
    event_id: str,
    data: dict[str, object] | None = None,
    seq: int | None = None,
) -> Verdict:
    verdict, _ = cursor.decide(type_, event_id, data or {}, seq)
    if verdict is Verdict.DELIVER:
        cursor.accept(type_, event_id, data or {}, seq)
    return verdict


def test_contiguous_log_events_are_delivered_and_repeats_dropped() -> None:
    c = StreamCursor("orders")
    assert feed(c, "order:update", eid(1, 1)) is Verdict.DELIVER
    assert feed(c, "order:update", eid(2, 2)) is Verdict.DELIVER
    assert feed(c, "order:update", eid(2, 2)) is Verdict.DUPLICATE  # same id
    assert feed(c, "order:update", eid(1, 1)) is Verdict.DUPLICATE
    assert c.resume_id == eid(2, 2)


def test_old_duplicates_beyond_the_id_memory_are_caught_by_position() -> None:
    c = StreamCursor("orders", dedup_capacity=2)
    for n in range(1, 6):
        assert feed(c, "order:update", eid(n, n)) is Verdict.DELIVER
    assert eid(1, 1) not in c.ids
    assert feed(c, "order:update", eid(1, 1)) is Verdict.DUPLICATE


def test_consecutive_seqs_per_key_are_continuous_whatever_the_offsets() -> None:
    """Orders and fills interleave with alerts in the user's log: offsets jump, each key's
    numbers do not, so nothing is a hole."""
    c = StreamCursor("orders")
    assert feed(c, "order:update", eid(3, 3), seq=1) is Verdict.DELIVER  # the first sets the base
    assert feed(c, "order:fill", eid(7, 7), seq=4) is Verdict.DELIVER
    assert feed(c, "order:update", eid(9, 9), seq=2) is Verdict.DELIVER
    assert feed(c, "order:fill", eid(12, 12), seq=5) is Verdict.DELIVER
    assert c.seqs == {"order:update": (2, eid(9, 9)), "order:fill": (5, eid(12, 12))}


def test_a_seq_jump_is_a_hole_of_its_key_and_a_lower_one_a_duplicate() -> None:
    c = StreamCursor("orders")
    feed(c, "order:update", eid(3, 3), seq=4)
    feed(c, "order:fill", eid(4, 4), seq=1)
    verdict, check = c.decide("order:update", eid(9, 9), {}, 7)
    assert verdict is Verdict.CHECK and check is not None
    assert (check.after, check.key, check.low, check.high, check.until) == (
        eid(3, 3),
        "order:update",
        4,
        7,
        9,
    )
    answer = [
        WireEvent("orders", "order:update", eid(n, n), {}, seq=seq) for n, seq in ((5, 5), (6, 6), (9, 7))
    ] + [WireEvent("orders", "order:fill", eid(8, 8), {}, seq=2)]
    assert [e.seq for e in c.missing(answer, check)] == [5, 6]  # the hole's, not the fill
    feed(c, "order:update", eid(5, 5), seq=5)
    assert c.decide("order:update", eid(2, 2), {}, 3)[0] is Verdict.DUPLICATE  # an older one
    assert c.decide("order:update", eid(10, 10), {}, 5)[0] is Verdict.DUPLICATE  # a repeated number


def test_strategy_events_count_per_strategy() -> None:
    c = StreamCursor("trading")
    feed(c, "strategy:update", eid(1, 1), {"strategyId": "s1"}, seq=1)
    feed(c, "strategy:update", eid(2, 2), {"strategyId": "s2"}, seq=1)
    assert feed(c, "strategy:update", eid(3, 3), {"strategyId": "s1"}, seq=2) is Verdict.DELIVER
    verdict, _ = c.decide("strategy:update", eid(4, 4), {"strategyId": "s2"}, 3)
    assert verdict is Verdict.CHECK


def test_scan_results_count_per_scan() -> None:
    c = StreamCursor("scans/breakouts")  # other scans' results count on their own
    assert feed(c, "scan:result", eid(1, 1), {"scanId": "breakouts"}, seq=1) is Verdict.DELIVER
    assert feed(c, "scan:result", eid(5, 5), {"scanId": "breakouts"}, seq=2) is Verdict.DELIVER
    verdict, _ = c.decide("scan:result", eid(9, 9), {"scanId": "breakouts"}, 4)
    assert verdict is Verdict.CHECK


def test_ticks_and_events_without_seq_are_never_holes() -> None:
    c = StreamCursor("prices")
    assert feed(c, "price:update", eid(0, 5), {"symbol": "A"}) is Verdict.DELIVER
    assert feed(c, "price:update", eid(40, 90), {"symbol": "A"}) is Verdict.DELIVER


def test_a_reset_forgets_the_bases() -> None:
    c = StreamCursor("alerts")
    feed(c, "alert:new", eid(1, 1), seq=1)
    c.reset()
    assert feed(c, "alert:new", eid(9, 9), seq=9) is Verdict.DELIVER


def test_a_snapshot_sets_the_starting_point() -> None:
    c = StreamCursor("orders")
    assert feed(c, "order:update", eid(10, 14), {"snapshot": True, "orders": []}) is Verdict.DELIVER
    assert feed(c, "order:update", eid(11, 15)) is Verdict.DELIVER
    assert feed(c, "order:update", eid(10, 12)) is Verdict.DUPLICATE  # behind the snapshot


def test_ticks_are_ordered_per_symbol_not_by_log_position() -> None:
    c = StreamCursor("prices")
    assert feed(c, "price:update", eid(0, 5), {"symbol": "A"}) is Verdict.DELIVER
    assert feed(c, "price:update", eid(0, 9), {"symbol": "B"}) is Verdict.DELIVER
    # A conflated tick of A released late: older than B's, newer than A's last: delivered.
    assert feed(c, "price:update", eid(0, 7), {"symbol": "A"}) is Verdict.DELIVER
    assert feed(c, "price:update", eid(0, 6), {"symbol": "A"}) is Verdict.STALE
    assert c.resume_id == eid(0, 9)  # resume from the highest position


def test_position_updates_resumed_after_later_log_events_are_current_values() -> None:
    """Resume replays log events, then ticks: a mark with a lower position than the replayed
    orders is still news, for its symbol."""
    c = StreamCursor("trading")
    feed(c, "order:update", eid(5, 9))
    assert feed(c, "order:update", eid(6, 10)) is Verdict.DELIVER
    assert feed(c, "order:update", eid(7, 14)) is Verdict.DELIVER
    assert feed(c, "position:update", eid(6, 12), {"symbol": "A", "quantity": 1}) is Verdict.DELIVER
    assert feed(c, "position:update", eid(6, 11), {"symbol": "A", "quantity": 1}) is Verdict.STALE


def test_another_epoch_without_a_reset_is_a_candidate() -> None:
    c = StreamCursor("orders")
    feed(c, "order:update", eid(3, 3))
    verdict, check = c.decide("order:update", eid(1, 1, epoch=EPOCH + 1), {})
    assert verdict is Verdict.CHECK and check is not None and check.epoch_changed
    c.reset()
    assert feed(c, "order:update", eid(1, 1, epoch=EPOCH + 1)) is Verdict.DELIVER
    assert c.resume_id == eid(1, 1, epoch=EPOCH + 1)


def test_opaque_ids_are_deduplicated_by_text_and_resumed_from() -> None:
    c = StreamCursor("orders")
    assert feed(c, "order:update", "not-ours-1") is Verdict.DELIVER
    assert feed(c, "order:update", "not-ours-1") is Verdict.DUPLICATE
    assert feed(c, "order:update", "not-ours-0") is Verdict.DELIVER  # no order among opaque ids
    assert c.resume_id == "not-ours-0"


def test_a_check_answer_serves_later_holes_it_lists() -> None:
    c = StreamCursor("orders")
    feed(c, "order:update", eid(1, 1), seq=1)
    _, check = c.decide("order:update", eid(3, 3), {}, 3)
    assert check is not None
    answer = [WireEvent("orders", "order:update", eid(n, n), {}, seq=n) for n in (2, 3, 5)]
    c.remember_check(answer)
    assert c.missing(answer, check) == [answer[0]]
    for event in answer[:2]:
        c.accept(event.type, event.id, event.data, event.seq)
    _, later = c.decide("order:update", eid(5, 5), {}, 5)
    assert later is not None
    assert c.answer_from_last_check(eid(5, 5), later) == []  # 4 is not in the answer: no request
    _, unknown = c.decide("order:update", eid(9, 9), {}, 9)
    assert unknown is not None and c.answer_from_last_check(eid(9, 9), unknown) is None


def test_seed_resumes_from_a_given_id() -> None:
    c = StreamCursor("orders")
    c.seed(eid(8, 8))
    assert c.resume_id == eid(8, 8)
    assert feed(c, "order:update", eid(8, 8)) is Verdict.DUPLICATE
    assert feed(c, "order:update", eid(9, 9)) is Verdict.DELIVER
