from __future__ import annotations

from pathlib import Path

import pytest

from tickwire.config import Settings, env_name, load_settings
from tickwire.errors import ConfigError

SECRET = "x" * 32


def test_defaults_match_the_spec() -> None:
    s = load_settings(env={"TICKWIRE_SECRET": SECRET})
    assert (s.host, s.port, s.broker) == ("127.0.0.1", 8080, "memory")
    assert (s.keepalive_s, s.retry_ms, s.user_buffer, s.buffer_ttl_s) == (30, 5000, 100, 300)
    assert (s.idle_timeout_s, s.ws_ping_s, s.max_body, s.max_conns_per_user) == (300, 30, 1048576, 10)
    assert (s.connect_rate, s.throttle_ms, s.cors_origins, s.demo) == (5, 100, ("*",), False)


def test_spec_env_names() -> None:
    names = {env_name(f) for f in Settings.model_fields}
    for name in (
        "TICKWIRE_HOST",
        "TICKWIRE_PORT",
        "TICKWIRE_SECRET",
        "TICKWIRE_BROKER",
        "TICKWIRE_KEEPALIVE_S",
        "TICKWIRE_RETRY_MS",
        "TICKWIRE_USER_BUFFER",
        "TICKWIRE_BUFFER_TTL_S",
        "TICKWIRE_IDLE_TIMEOUT_S",
        "TICKWIRE_WS_PING_S",
        "TICKWIRE_MAX_BODY",
        "TICKWIRE_MAX_CONNS_PER_USER",
        "TICKWIRE_CONNECT_RATE",
        "TICKWIRE_THROTTLE_MS",
        "TICKWIRE_CORS_ORIGINS",
        "TICKWIRE_DEMO",
    ):
        assert name in names


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    file = tmp_path / "tickwire.yaml"
    file.write_text(f"port: 9000\nthrottle_ms: 50\nsecret: {SECRET}\ncors_origins: [https://a.example]\n")
    s = load_settings(file, env={"TICKWIRE_PORT": "9100"}, overrides={"throttle_ms": 0})
    assert s.port == 9100 and s.throttle_ms == 0 and s.cors_origins == ("https://a.example",)


def test_env_lists_are_comma_separated() -> None:
    s = load_settings(
        env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert not s.cors_any


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TICKWIRE_PORT": "eighty"}, "TICKWIRE_PORT"),
        ({"TICKWIRE_PORT": "70000"}, "TICKWIRE_PORT"),
        ({"TICKWIRE_THROTTLE_MS": "-1"}, "TICKWIRE_THROTTLE_MS"),
        ({"TICKWIRE_BODY_TIMEOUT_S": "0"}, "TICKWIRE_BODY_TIMEOUT_S"),
        ({"TICKWIRE_BODY_TIMEOUT_S": "soon"}, "TICKWIRE_BODY_TIMEOUT_S"),
        ({"TICKWIRE_BROKER": "kafka://x"}, "redis://"),
        ({"TICKWIRE_SECRET": "short"}, "at least 32 bytes"),
        ({"TICKWIRE_DEMO": "maybe"}, "TICKWIRE_DEMO"),
        ({"TICKWIRE_DRIVER": "uring"}, "TICKWIRE_DRIVER: Value error, must be native or asgi (got 'uring')"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"TICKWIRE_SECRET": SECRET, **env})
    assert message in str(err.value)
    assert "short" not in str(err.value) or "TICKWIRE_SECRET" in str(err.value)


def test_the_body_timeout_is_ten_seconds_by_default() -> None:
    assert load_settings(env={"TICKWIRE_SECRET": SECRET}).body_timeout_s == 10
    assert (
        load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_BODY_TIMEOUT_S": "0.5"}).body_timeout_s == 0.5
    )


def test_a_secret_is_required_outside_demo_mode_and_generated_in_it() -> None:
    with pytest.raises(ConfigError, match="TICKWIRE_SECRET is not set"):
        load_settings(env={})
    demo = load_settings(env={"TICKWIRE_DEMO": "1"})
    assert demo.demo and len(demo.secret) >= 32


def test_bad_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, env={})
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(unknown, env={})
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(listing, env={})


def test_the_tick_cap_is_off_by_default_and_validated() -> None:
    assert load_settings(env={"TICKWIRE_SECRET": SECRET}).client_max_events_s == 0
    s = load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_CLIENT_MAX_EVENTS_S": "10"})
    assert s.client_max_events_s == 10
    for bad in ("-1", "ten", "1e9"):
        with pytest.raises(ConfigError, match="TICKWIRE_CLIENT_MAX_EVENTS_S"):
            load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_CLIENT_MAX_EVENTS_S": bad})


def test_several_workers_need_a_shared_broker() -> None:
    with pytest.raises(ConfigError, match="workers=2 needs a shared broker") as err:
        load_settings(env={"TICKWIRE_SECRET": SECRET}, overrides={"workers": 2})
    assert "redis://" in str(err.value)
    s = load_settings(
        env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_BROKER": "redis://127.0.0.1:1/0"}, overrides={"workers": 2}
    )
    assert s.workers == 2
    with pytest.raises(ConfigError, match="TICKWIRE_WORKERS"):
        load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_WORKERS": "0"})
    with pytest.raises(ConfigError, match="run the demo with one worker"):
        load_settings(
            env={"TICKWIRE_DEMO": "1", "TICKWIRE_BROKER": "redis://127.0.0.1:1/0"}, overrides={"workers": 2}
        )


def test_the_driver_is_native_by_default_and_asgi_on_request() -> None:
    assert load_settings(env={"TICKWIRE_SECRET": SECRET}).driver == "native"
    assert load_settings(env={"TICKWIRE_SECRET": SECRET, "TICKWIRE_DRIVER": "ASGI"}).driver == "asgi"
