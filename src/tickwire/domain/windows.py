"""Sliding windows of prices and volumes per symbol, in bounded memory (pure).

A `Series` covers one window length `w` of one symbol: ticks are aggregated into buckets of
`w / 20` seconds (lowest and highest price, volume), and only the buckets the rules need
are kept: the window itself (20 buckets) for `pct_move`, and 10 windows before it for the
average of `volume_spike`. So a series holds at most 220 buckets whatever the tick rate,
and a value is exact to a twentieth of the window (the oldest bucket may be partly out).

- `move(now, price)`: the largest change in percent from any price of the window to
  `price`, signed (+ up, - down);
- `volume_ratio(now)`: the volume of the window over the average volume per window of the
  (up to 10) whole windows before it; None until one whole window of history exists, or
  when that history traded nothing.

`Windows` holds the series the engine asked for (`require`), per symbol; `observe` is the
hot path of every price tick: a dict lookup when no rule of the symbol needs a window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

BUCKETS = 20  # buckets per window
BASELINE = 10  # windows of history behind a volume average


class Series:
    __slots__ = ("baseline", "buckets", "first", "width", "window_s")

    def __init__(self, window_s: float, baseline: int = 0) -> None:
        self.window_s = window_s
        self.width = window_s / BUCKETS
        self.baseline = baseline
        self.buckets: deque[list[float]] = deque()  # [index, low, high, volume], oldest first
        self.first: int | None = None  # index of the first bucket ever seen

    def add(self, t: float, price: float | None, volume: float) -> None:
        k = int(t // self.width)
        buckets = self.buckets
        last = buckets[-1] if buckets else None
        if last is None or k > last[0]:
            low = high = price if price is not None else float("nan")
            buckets.append([k, low, high, volume])
            if self.first is None:
                self.first = k
            floor = k - BUCKETS * (1 + self.baseline)
            while buckets[0][0] <= floor:
                buckets.popleft()
            return
        # Same bucket (or a late tick): into the newest bucket.
        if price is not None:
            if not last[1] <= price:  # also replaces a NaN (a bucket of volume only)
                last[1] = price
            if not last[2] >= price:
                last[2] = price
        last[3] += volume

    def _window(self, now: float) -> Iterable[list[float]]:
        k = int(now // self.width)
        for bucket in reversed(self.buckets):
            if bucket[0] <= k - BUCKETS:
                break
            if bucket[0] <= k:
                yield bucket

    def move(self, now: float, price: float) -> float | None:
        low = high = price
        for bucket in self._window(now):
            if bucket[1] < low:
                low = bucket[1]
            if bucket[2] > high:
                high = bucket[2]
        up = (price - low) / low * 100 if low > 0 else 0.0
        down = (price - high) / high * 100 if high > 0 else 0.0
        return up if abs(up) >= abs(down) else down

    def volume_ratio(self, now: float) -> float | None:
        if self.first is None:
            return None
        k = int(now // self.width)
        windows = min(self.baseline, (k - self.first + 1) // BUCKETS - 1)
        if windows < 1:
            return None
        current = history = 0.0
        oldest = k - BUCKETS * (1 + windows)
        for index, _low, _high, volume in reversed(self.buckets):
            if index <= oldest:
                break
            if index > k:
                continue
            if index > k - BUCKETS:
                current += volume
            else:
                history += volume
        average = history / windows
        return current / average if average > 0 else None


class Windows:
    """The series of every symbol some rule needs, fed by every price tick."""

    def __init__(self) -> None:
        self._series: dict[str, dict[float, Series]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._series.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._series

    def require(self, symbol: str, needs: dict[float, bool]) -> list[Series]:
        """The windows `symbol` needs now: window length -> whether a volume average is
        needed. Series no longer needed go; kept ones keep their history. The new ones."""
        if not needs:
            self._series.pop(symbol, None)
            return []
        current = self._series.get(symbol, {})
        kept: dict[float, Series] = {}
        created = []
        for window_s, volume in needs.items():
            series = current.get(window_s)
            if series is None:
                series = Series(window_s)
                created.append(series)
            series.baseline = BASELINE if volume else series.baseline
            kept[window_s] = series
        self._series[symbol] = kept
        return created

    def observe(self, symbol: str, t: float, price: float | None, volume: float) -> None:
        series = self._series.get(symbol)
        if series is None:
            return
        for s in series.values():
            s.add(t, price, volume)

    def get(self, symbol: str, window_s: float) -> Series | None:
        series = self._series.get(symbol)
        return series.get(window_s) if series is not None else None
