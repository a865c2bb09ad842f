"""Recordings (`tickwire record`): delivered events as JSON Lines, and how to read them back.

A recording is one delivered event per line, as `ClientEvent.to_json()` writes it:
`{"stream": "orders", "event": "order:update", "id": "...", "data": {...}}`. Control events
(`connected`, `stream:reset`, ...) are not recorded. The replay server (replay.py) serves
a `Recording`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from tickwire.client.events import CONTROL_TYPES, ClientEvent


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded event; `id` is served exactly as recorded (opaque to the replay)."""

    stream: str
    event: str
    id: str | None
    data: Any

    @property
    def type(self) -> str:
        """The event type (the name wire/poll.py and the client use)."""
        return self.event


def write_event(out: IO[bytes], event: ClientEvent) -> bool:
    """Append one event to a recording; False (and nothing written) for control events."""
    if event.is_control or not event.stream:
        return False
    out.write(orjson.dumps(event.to_json()) + b"\n")
    return True


def read_recording(path: str | Path) -> list[Recorded]:
    out = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                recorded = Recorded(
                    str(item["stream"]).strip("/"), str(item["event"]), item.get("id"), item.get("data")
                )
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recorded event: {exc}") from None
            if recorded.event not in CONTROL_TYPES:
                out.append(recorded)
    return out


@dataclass
class Recording:
    """A recording indexed by stream."""

    streams: dict[str, list[Recorded]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        recording = cls()
        for item in read_recording(path):
            recording.streams.setdefault(item.stream, []).append(item)
        return recording

    def replay(
        self, stream: str, after: str | None, symbols: Iterable[str] | None = None
    ) -> tuple[list[Recorded], bool]:
        """The events a reader of `stream` gets after `after`, and whether the id was found."""
        events = self.streams.get(stream.strip("/"), [])
        if symbols is not None:
            wanted = set(symbols)
            events = [e for e in events if not _is_tick(e) or e.data.get("symbol") in wanted]
        if after is None:
            return events, True
        for index, event in enumerate(events):
            if event.id == after:
                return events[index + 1 :], True
        return events, False


def _is_tick(event: Recorded) -> bool:
    return event.event == "price:update" and isinstance(event.data, dict) and "symbol" in event.data
