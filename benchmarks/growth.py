"""How cost grows with the work: reply length and concurrent streams.

* :func:`bench_reply_lengths`, in this process: the time of a call of ``n``
  chunks for every ``n`` in ``sizes`` on each transport and its comparison
  client (the clients take turns call by call), as seconds per chunk. The
  key-based API answers with the same text in one piece, so there a "chunk"
  is the same amount of text.
* :func:`log_slope`: the least-squares slope of log(call time) against
  log(n). 1.00 is a flat cost per chunk; a term growing with the reply (a
  re-join, a quadratic buffer) pushes it towards 2.
* The concurrent streams run in fresh processes (``fresh.child_concurrency``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from .measure import Slots, rotated, slot_call

#: Calls per reply length (fewer for the long ones); each round takes their median.
CALLS_PER_SIZE = {1: 60, 10: 40, 100: 20, 1_000: 8, 10_000: 3, 100_000: 1}


def calls_for(n: int, quick: bool) -> int:
    calls = CALLS_PER_SIZE.get(n, max(1, 10_000 // max(n, 1)))
    return max(1, calls // 4) if quick else calls


def bench_reply_lengths(
    slots: Slots, sizes: Sequence[int], rounds: int, quick: bool, label: str
) -> dict[str, dict[int, float | None]]:
    """Seconds per chunk, by client and reply length: the median over rounds
    of each round's median call time, divided by ``n``."""
    names = slots.names
    per_round: dict[str, dict[int, list[float]]] = {name: {n: [] for n in sizes} for name in names}
    for r in range(rounds):
        slots.open_round(r)
        for n in sizes:
            samples: dict[str, list[float]] = {name: [] for name in names}
            for i in range(calls_for(n, quick)):
                for name in rotated(names, r + i):
                    timing = slot_call(slots, name, n, f"{label} {name} {n} chunks round {r + 1} #{i}")
                    if timing is not None:
                        samples[name].append(timing[0])
            for name in names:
                if samples[name]:
                    per_round[name][n].append(statistics.median(samples[name]))
    return {
        name: {n: (statistics.median(v) / n if v else None) for n, v in by_size.items()}
        for name, by_size in per_round.items()
    }


def log_slope(per_chunk: Mapping[int, float | None], smallest: int = 1_000) -> float | None:
    """The slope of log(call time) over log(n) for ``n >= smallest``."""
    points = [
        (math.log(n), math.log(cost * n))
        for n, cost in per_chunk.items()
        if n >= smallest and cost is not None and cost > 0
    ]
    if len(points) < 2:
        return None
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def summary(per_chunk: Mapping[int, float | None]) -> str:
    """``1: 212 us, 10: 23.1 us, ...`` (the cost of one chunk at each length)."""
    return ", ".join(f"{n:,}: {fmt_us(cost)}" for n, cost in per_chunk.items())


def fmt_us(seconds: float | None) -> str:
    if seconds is None:
        return "failed"
    us = seconds * 1e6
    return f"{us:.0f} us" if us >= 100 else f"{us:.1f} us" if us >= 10 else f"{us:.2f} us"


def growth_results(results: dict[str, Any]) -> dict[str, Any]:
    """The slope of each client's curve, for the table."""
    return {name: log_slope(curve) for name, curve in results.items()}
