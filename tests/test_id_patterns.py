"""Ids are checked against the WHOLE value: `pattern.match` with a `$` anchor accepts a
trailing newline (`"alice\\n"` matched `^[A-Za-z0-9._@:-]{1,128}$`), so every id pattern is
applied with `fullmatch`. One test per entry point, each with a value ending in `\\n`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tickwire
from tickwire.core.streams import Principal
from tickwire.domain.catalog import catalog, resolve_stream
from tickwire.errors import ProtocolError, PublishError, StreamError
from tickwire.pipeline.validate import parse_publish_body
from tickwire.server.auth import issue_token, verify_token
from tickwire.server.http import CORRELATION_HEADER, correlation_id
from tickwire.wire.ws import Subscribe, parse_command

SECRET = "x" * 32
ALICE = Principal("alice")
ADMIN = Principal("root", frozenset({"admin"}))


def test_a_published_user_id_with_a_trailing_newline_is_refused() -> None:
    alert = {"type": "alert:new", "data": {"message": "m"}}
    assert parse_publish_body({**alert, "user": "alice"})[0].user == "alice"
    with pytest.raises(PublishError, match="`user` must be a user id"):
        parse_publish_body({**alert, "user": "alice\n"})


def test_a_token_whose_subject_ends_with_a_newline_is_refused() -> None:
    principal = verify_token(SECRET, issue_token(SECRET, "alice"))
    assert principal is not None and principal.user == "alice"
    assert verify_token(SECRET, issue_token(SECRET, "alice\n")) is None


@pytest.mark.parametrize("name", ["orders\n", "strategies/s1\n"])
def test_a_websocket_stream_name_with_a_trailing_newline_is_refused(name: str) -> None:
    with pytest.raises(ProtocolError, match="is not a stream name"):
        parse_command({"type": "subscribe", "streams": [{"stream": name}]})


def test_a_websocket_user_id_with_a_trailing_newline_is_refused() -> None:
    ok = parse_command({"type": "subscribe", "streams": [{"stream": "trading", "userId": "bob"}]})
    assert isinstance(ok, Subscribe) and ok.streams[0].user_id == "bob"
    with pytest.raises(ProtocolError, match="userId must be a user id"):
        parse_command({"type": "subscribe", "streams": [{"stream": "trading", "userId": "bob\n"}]})


def test_a_strategy_id_with_a_trailing_newline_names_no_strategy() -> None:
    assert resolve_stream("strategies/s1", {}, ALICE).item == "s1"
    with pytest.raises(StreamError) as refused:
        resolve_stream("strategies/s1\n", {}, ALICE)
    assert refused.value.status == 404


def test_a_requested_user_id_with_a_trailing_newline_is_refused() -> None:
    assert resolve_stream("trading", {"userId": "bob"}, ADMIN).log == "user:bob"
    with pytest.raises(StreamError) as refused:
        resolve_stream("trading", {"userId": "bob\n"}, ADMIN)
    assert refused.value.status == 400


def test_symbols_are_whole_symbols() -> None:
    """`?symbols=` values are trimmed before the check (a newline around one is not part of
    it), and a newline inside one is refused."""
    assert catalog().parse_keys("AAPL\n,MSFT", "symbols") == frozenset({"AAPL", "MSFT"})
    with pytest.raises(StreamError):
        catalog().parse_keys("AA\nPL", "symbols")


def test_a_correlation_id_with_a_trailing_newline_is_replaced_by_a_generated_one() -> None:
    assert correlation_id({CORRELATION_HEADER: "req-1"}) == "req-1"
    generated = correlation_id({CORRELATION_HEADER: "req-1\n"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_no_id_pattern_is_applied_with_match() -> None:
    """`.match(` checks a prefix only: every pattern of tickwire is applied with `fullmatch`
    (aside: starlette's route regexes, used as starlette itself uses them, and a tokenizer
    reading its input from a position, `.match(text, pos)`, which wants a prefix)."""
    root = Path(tickwire.__file__).parent
    uses = [
        f"{path.relative_to(root)}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for line in path.read_text().splitlines()
        if re.search(r"\.match\(", line)
        and "path_regex.match(" not in line
        and not re.search(r"\.match\(\w+, pos\)", line)
    ]
    assert uses == []
