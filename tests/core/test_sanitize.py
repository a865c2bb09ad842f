from __future__ import annotations

import pytest

from tickwire.core.sanitize import REDACTED, mask_pii, sanitize


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
