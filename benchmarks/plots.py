"""The growth curves as PNG plots (matplotlib, from the ``bench`` extra).

:func:`write_plots` draws two figures next to the docs page that shows
BENCHMARKS.md (``docs/img/``): the cost of one chunk against the reply's
length, and the aggregate throughput and the threads against concurrent
streams, one line per client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: (file name, alt text) of each plot, in the order BENCHMARKS.md shows them.
PLOTS: tuple[tuple[str, str], ...] = (
    ("benchmarks-reply-length.png", "Cost of one chunk against the reply's length, per client"),
    ("benchmarks-concurrency.png", "Aggregate throughput and threads against concurrent streams, per transport"),
)

_STYLE = {  # client label -> (colour, line style, marker)
    "myshell_sync": ("#1f77b4", "-", "o"),
    "raw websocket-client": ("#1f77b4", ":", "s"),
    "myshell_sync (http)": ("#d62728", "-", "o"),
    "requests + iter_lines": ("#d62728", ":", "s"),
    "myshell_sync (openapi)": ("#2ca02c", "-", "o"),
    "requests.Session().post + json": ("#2ca02c", ":", "s"),
}


def _style(name: str) -> tuple[str, str, str]:
    return _STYLE.get(name, ("#7f7f7f", "--", "^"))


def write_plots(
    folder: str,
    lengths: Mapping[str, Mapping[str, Mapping[int, float | None]]],
    concurrency: Mapping[str, Mapping[int, dict[str, Any]]],
    title: str,
) -> list[str]:
    """Write the plots into ``folder``; their paths (none if matplotlib is missing).

    ``lengths``: transport -> client -> reply length -> seconds per chunk;
    ``concurrency``: transport -> streams -> the child's figures."""
    from .growth import log_slope

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return []
    os.makedirs(folder, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=100)
    for transport, clients in lengths.items():
        for name, curve in clients.items():
            points = [(n, cost * 1e6) for n, cost in sorted(curve.items()) if cost]
            if points:
                colour, line, marker = _style(name)
                slope = log_slope(curve)
                label = f"{transport}: {name}" + ("" if slope is None else f" (slope {slope:.2f})")
                ax.plot(*zip(*points), line, color=colour, marker=marker, markersize=4, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks in the reply")
    ax.set_ylabel("microseconds per chunk (call time / chunks)")
    ax.set_title("Cost of one chunk against the reply's length: the per-call cost spread out, then flat", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.99, 0.01, title, ha="right", va="bottom", fontsize=6, color="#555555")
    fig.tight_layout()
    path = os.path.join(folder, PLOTS[0][0])
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    for transport, by_streams in concurrency.items():
        points = sorted((k, v) for k, v in by_streams.items() if v and v.get("chunks_per_s"))
        if not points:
            continue
        colour = {"websocket": "#1f77b4", "http": "#d62728", "openapi": "#2ca02c"}.get(transport, "#7f7f7f")
        xs = [k for k, _ in points]
        name = transport + (" (whole replies: chunks' worth of text)" if transport == "openapi" else "")
        left.plot(xs, [v["chunks_per_s"] / 1e3 for _, v in points], "-o", color=colour, markersize=4, label=name)
        right.plot(
            xs,
            [v["library_threads"] for _, v in points],
            "-o",
            color=colour,
            markersize=4,
            label=f"{transport}: library threads",
        )
        right.plot(xs, [v["connections"] for _, v in points], ":", color=colour, label=f"{transport}: connections")
    levels = sorted({k for by_streams in concurrency.values() for k in by_streams})
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels)
        ax.set_xticklabels([str(k) for k in levels])
        ax.set_xlabel("concurrent streams (one client, a thread each)")
        ax.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
    left.yaxis.set_major_formatter(plain)
    left.yaxis.set_minor_formatter(plain)
    left.tick_params(axis="y", which="minor", labelsize=7)
    left.set_ylabel("aggregate throughput (1,000 chunks/s, log)")
    left.set_title("Aggregate throughput", fontsize=10)
    right.set_yscale("log", base=2)
    right.set_yticks([1, 2, 4, 8, 16, 32, 64, 128, 256])
    right.set_yticklabels(["1", "2", "4", "8", "16", "32", "64", "128", "256"])
    right.set_ylabel("count (peak)")
    right.set_title("Library threads and connections", fontsize=10)
    left.legend(fontsize=7, loc="center")
    right.legend(fontsize=7)
    fig.text(0.99, 0.01, title, ha="right", va="bottom", fontsize=6, color="#555555")
    fig.tight_layout()
    path = os.path.join(folder, PLOTS[1][0])
    fig.savefig(path)
    plt.close(fig)
    paths.append(path)
    return paths
