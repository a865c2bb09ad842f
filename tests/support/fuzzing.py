"""Example budgets and input strategies of the model-based and fuzz tests
(tests/node/test_delivery_model.py, tests/fuzz/).

Budgets are small in `make test` and large under `make fuzz`: `HYPOTHESIS_PROFILE=fuzz`
(what `make fuzz` sets) gives every budget its `fuzz` count (by default 50 times the quick
one; `FUZZ_SCALE=N` changes the factor). Only the tests that ask for a budget are affected:
the global hypothesis profile stays as it is for every other test.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tickwire.core.ids import EPOCH_MAX, Position, format_id
from tickwire.domain.catalog import EVENT_TYPES, STREAMS

T = TypeVar("T")

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "quick")
FUZZ = PROFILE == "fuzz"
SCALE = int(os.environ.get("FUZZ_SCALE", "50"))

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def budget(examples: int, fuzz: int | None = None, *, steps: int | None = None) -> settings:
    """Settings with `examples` examples (`fuzz` of them under `make fuzz`); `steps` is the
    number of rules per run of a state machine. No deadline: a request to a real server
    or a node restart takes what it takes."""
    count = (fuzz if fuzz is not None else examples * SCALE) if FUZZ else examples
    extra: dict[str, Any] = {} if steps is None else {"stateful_step_count": steps * (2 if FUZZ else 1)}
    return settings(max_examples=count, deadline=None, suppress_health_check=_QUIET, **extra)


# -- inputs ------------------------------------------------------------------------------------

# Numbers a JSON or MessagePack sender can put anywhere: huge, tiny, signed zero, not finite.
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.sampled_from(
        [0.0, -0.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, 2**53, 2**63, -(2**63)]
    ),
)
# Strings that look like numbers, ids, keywords, paths or markup to a careless parser.
nasty_strings = st.sampled_from(
    [
        "",
        " ",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "1e999",
        "-0",
        "0x10",
        "1_000",
        "\u0665",  # an Arabic-Indic five: int() and float() read it
        "null",
        "true",
        "__proto__",
        "constructor",
        "\x00",
        "\ufeff",
        "\u2028",
        "A" * 300,
        "../../etc/passwd",
        "<script>",
        "%00",
        "%ff",
        "1735819800000-3kf9a",
        "9999999999999-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    ]
)
texts = st.one_of(st.text(max_size=40), nasty_strings)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=25,
)


class Nested(list[Any]):
    """Lists and objects nested `depth` deep (shown by its depth when hypothesis prints it)."""

    def __init__(self, depth: int) -> None:
        value: Any = 1
        for i in range(depth - 1):
            value = [value] if i % 2 else {"k": value}
        super().__init__([value])
        self.depth = depth

    def __repr__(self) -> str:
        return f"Nested({self.depth})"


# Values of the fields the catalogue declares (ids, numbers, choices), and of any other field.
field_values = st.one_of(json_like, numbers, texts, st.builds(Nested, st.sampled_from([40, 300, 2000])))
field_names = st.sampled_from(
    sorted(
        {
            f
            for t in EVENT_TYPES.values()
            for f in (*t.required, *t.numbers, *(c for c, _ in t.choices), "timestamp", "urgent", "snapshot")
        }
        | {"symbol", "side", "qty", "status", "price", "strategyId", "level", "quantity", "apiKey"}
    )
)
event_data = st.dictionaries(st.one_of(field_names, texts), field_values, max_size=8)
users = st.one_of(st.sampled_from(["u1", "u2", "fz"]), texts, numbers, st.none())
event_items = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(sorted(EVENT_TYPES)), "data": event_data},
        optional={"user": users},
    ),
    st.dictionaries(st.sampled_from(["type", "user", "data", "extra"]), json_like, max_size=4),
    json_like,
)
publish_bodies = st.one_of(event_items, st.lists(event_items, max_size=6))

stream_paths = st.one_of(
    st.sampled_from(sorted(STREAMS)),
    st.sampled_from(
        ["strategies/s1", "strategies/", "strategies/a/b", "/orders/", "me", "ws", "test", "", "//"]
    ),
    texts,
)


def _id(pos: Position) -> str:
    return format_id(1_735_819_800_000, pos)


event_ids = st.one_of(
    texts,
    st.from_regex(r"[0-9]{13}-[0-9A-Za-z]{1,40}", fullmatch=True),
    st.builds(
        _id,
        st.builds(
            Position, st.integers(0, EPOCH_MAX + 5), st.integers(0, 2**48 + 5), st.integers(0, 2**48 + 5)
        ),
    ),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)


def outcome(
    call: Callable[[], T], errors: type[Exception] | tuple[type[Exception], ...]
) -> tuple[T | None, Any]:
    """(what `call` returned, None), or (None, the error) when it raised one of `errors`, the
    documented ones: any other exception propagates and fails the test."""
    try:
        return call(), None
    except errors as exc:
        return None, exc


def json_text(value: Any) -> bytes:
    """`value` as a client's JSON text, including what strict JSON forbids and Python's
    encoder writes anyway (NaN, Infinity, integers of any size, lone surrogates)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))  # Nested(2000) is deeper than the default allows
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    finally:
        sys.setrecursionlimit(limit)


# -- WebSocket commands ----------------------------------------------------------------------------

command_fields = st.sampled_from(["type", "rid", "token", "streams", "ts", "stream", "lastEventId", "x"])
stream_items = st.one_of(
    st.fixed_dictionaries(
        {"stream": stream_paths},
        optional={
            "lastEventId": st.one_of(event_ids, json_like),
            "symbols": st.one_of(st.lists(texts, max_size=4), json_like),
            "userId": st.one_of(texts, json_like),
        },
    ),
    json_like,
)
commands = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["auth", "subscribe", "unsubscribe", "ping", "Subscribe", "", "event"])},
        optional={
            "rid": st.one_of(texts, numbers, json_like),
            "token": st.one_of(texts, json_like),
            "streams": st.one_of(st.lists(st.one_of(stream_items, stream_paths), max_size=4), json_like),
            "ts": st.one_of(numbers, texts, json_like),
        },
    ),
    st.dictionaries(command_fields, json_like, max_size=5),
    json_like,
)
msgpack_values = st.recursive(
    st.one_of(
        scalars.filter(lambda v: not (isinstance(v, int) and not -(2**63) <= v < 2**64)),
        st.binary(max_size=20),
    ),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.one_of(texts, st.binary(max_size=8)), inner, max_size=5)
    ),
    max_leaves=25,
)


def pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


def packable(value: Any) -> bool:
    try:
        pack(value)
    except (OverflowError, TypeError, ValueError):
        return False
    return True


packed_commands = commands.filter(packable).map(pack)
