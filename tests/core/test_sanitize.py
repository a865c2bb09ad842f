from __future__ import annotations

import pytest

from tickwire.core.sanitize import REDACTED, PayloadError, PayloadRules, mask_pii, redact

sanitize = PayloadRules().clean


@pytest.mark.parametrize(
    "key",
    [
        "apiKey",
        "api_key",
        "API-KEY",
        "token",
        "accessToken",
        "refresh_token",
        "secret",
        "clientSecret",
        "password",
        "passwd",
        "Authorization",
        "credential",
        "awsCredentials",
        "privateKey",
        "private_key",
        "secretKey",
        "APCA-API-SECRET-KEY",
        "pwd",
        "sessionToken",
        "sessionTokens",
        "api.key",
        "aws_secret_access_key",
        "passphrase",
    ],
)
def test_secret_keys_are_redacted(key: str) -> None:
    assert sanitize({key: "x", "keep": 1}) == {key: REDACTED, "keep": 1}


@pytest.mark.parametrize("key", ["tokens", "tokenCount", "secretary", "keyboard", "symbol", "passwordHint"])
def test_other_keys_are_kept(key: str) -> None:
    assert sanitize({key: "x"}) == {key: "x"}


def test_redaction_reaches_any_depth_and_lists() -> None:
    data = {"a": [{"b": {"Auth_Token": "t", "ok": [1, {"password": "p"}]}}], "price": 1}
    assert sanitize(data) == {
        "a": [{"b": {"Auth_Token": REDACTED, "ok": [1, {"password": REDACTED}]}}],
        "price": 1,
    }


def test_clean_payloads_are_not_copied() -> None:
    data = {"symbol": "AAPL", "nested": {"x": [1, 2]}}
    assert sanitize(data) is data


def test_pii_is_masked_in_log_text_but_ids_and_times_are_kept() -> None:
    text = "user bob.smith@example.com phoned +1 415 555 0100 at 2026-01-02T10:30:00Z id 1735819800000-3kf9a"
    masked = mask_pii(text)
    assert "bob.smith" not in masked and "b***@example.com" in masked
    assert "415 555" not in masked
    assert "2026-01-02T10:30:00Z" in masked and "1735819800000-3kf9a" in masked


def _nested(depth: int, leaf: dict[str, object]) -> dict[str, object]:
    data: dict[str, object] = leaf
    for _ in range(depth - 1):
        data = {"n": data}
    return data


def test_redaction_reaches_depth_100() -> None:
    deep = _nested(100, {"apiKey": "AKIA", "keep": 1})
    for cleaned in (redact(deep), PayloadRules(max_depth=200).clean(deep)):
        node = cleaned
        for _ in range(99):
            node = node["n"]
        assert node == {"apiKey": REDACTED, "keep": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_nested(33, {"x": 1}), "deeper than 32"),
        ({"a": [[[[1]]]]}, None),
        ({"s": "x" * 65_537}, "at most 65536"),
        ({"l": list(range(10_001))}, "at most 10000"),
        ({"big": 2**64}, "beyond 64 bits"),
        ({1: "x"}, "not a string"),
        ({"obj": object()}, "not a JSON value"),
    ],
)
def test_payloads_outside_the_bounds_are_refused_saying_where(
    data: dict[str, object], message: str | None
) -> None:
    if message is None:
        assert PayloadRules().clean(data) is data
        return
    with pytest.raises(PayloadError, match=message):
        PayloadRules().clean(data)


def test_stripped_fields_go_at_any_depth_and_the_rest_stays() -> None:
    rules = PayloadRules(strip=["internalId", "_trace"])
    data = {"a": 1, "internalId": 7, "x": [{"internalId": 8, "b": 2}], "y": {"_trace": "t", "c": 3}}
    assert rules.clean(data) == {"a": 1, "x": [{"b": 2}], "y": {"c": 3}}
    assert data["internalId"] == 7  # the publisher's object is not changed
