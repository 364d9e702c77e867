"""The OpenAI-compatible server's price: ``myshell-sync serve`` against ``generate()``.

In ``python -m benchmarks`` (:func:`bench_serve`, against the fast peer) and
on its own as ``python -m benchmarks.openai_serve`` (against a local MyShell
server in this process, no chunk delay):

- time to first chunk and whole-call time of ``client.generate()`` called
  directly, and of the official ``openai`` SDK streaming through
  ``myshell-sync serve`` (its own process, WebSocket transport, its default
  8 connections), warm, the two taking turns call by call;
- (in the suite) the throughput of a long reply both ways;
- concurrent streams through ``serve`` (64): every reply checked, p50/p99
  time to first chunk and the wall time.

Prints numbers; asserts only that every reply is right.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable

MODEL = "gpt-4"


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_serve(base_url: str, threads: int) -> tuple[subprocess.Popen, str]:
    """``myshell-sync serve`` on a free port against ``base_url``: (process, its /v1 URL).

    It is the command line of the myshell_sync this process imports (the
    console script runs whichever is installed)."""
    from .process import python_command

    process = subprocess.Popen(
        python_command(
            "myshell_sync._cli",
            "serve",
            "--base-url",
            base_url,
            "--captcha-delay",
            "0",
            "--transport",
            "websocket",
            "--port",
            "0",
            "--threads",
            str(threads),
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise RuntimeError(f"serve did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0]


def stop_serve(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


class Callers:
    """``generate()`` on a warm client, and the openai SDK through serve:
    each call returns (perf_counter() at the first chunk, the whole text)."""

    def __init__(self, upstream: str, served: str, max_connections: int) -> None:
        import openai

        from myshell_sync import Myshell

        self.direct = Myshell(upstream, captcha_delay=0, max_connections=max_connections)
        self.direct.connect(MODEL)
        self.sdk = openai.OpenAI(base_url=served, api_key="unused", max_retries=0, timeout=60)

    def generate(self, messages: list[dict]) -> tuple[float, str]:
        chunks = self.direct.generate(MODEL, messages)
        first_chunk = next(chunks)
        first = time.perf_counter()
        return first, first_chunk + "".join(chunks)

    def served(self, messages: list[dict]) -> tuple[float, str]:
        stream = self.sdk.chat.completions.create(model=MODEL, messages=messages, stream=True)
        parts: list[str] = []
        first = 0.0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not parts:
                    first = time.perf_counter()
                parts.append(chunk.choices[0].delta.content)
        return first, "".join(parts)

    def close(self) -> None:
        self.sdk.close()
        self.direct.close()


def timed(call: Callable[[], tuple[float, str]]) -> tuple[float, float, str]:
    started = time.perf_counter()
    first, text = call()
    return first - started, time.perf_counter() - started, text


def interleaved(
    callers: Callers,
    messages_of: Callable[[int], list[dict]],
    expected_of: Callable[[int], str],
    calls: int,
    failures: list[str],
) -> dict[str, dict[str, list[float]]]:
    """``calls`` calls each way, taking turns: first-chunk and whole-call seconds."""
    out: dict[str, dict[str, list[float]]] = {
        "generate()": {"first": [], "total": []},
        "serve": {"first": [], "total": []},
    }
    for index in range(calls):
        ways = (("generate()", callers.generate), ("serve", callers.served))
        for name, call in ways if index % 2 == 0 else ways[::-1]:
            try:
                first, total, text = timed(functools.partial(call, messages_of(index)))
            except Exception as exc:
                failures.append(f"{name} call {index}: {exc!r}")
                continue
            if text != expected_of(index):
                failures.append(f"{name} call {index}: wrong reply ({len(text)} chars)")
                continue
            out[name]["first"].append(first)
            out[name]["total"].append(total)
    return out


def concurrent(
    callers: Callers,
    streams: int,
    messages_of: Callable[[int], list[dict]],
    expected_of: Callable[[int], str],
    failures: list[str],
) -> dict[str, Any]:
    """``streams`` streams through serve at once, every reply checked."""
    firsts: list[float | None] = [None] * streams
    errors: list[str] = []
    barrier = threading.Barrier(streams)

    def one(index: int) -> None:
        barrier.wait()
        try:
            first, _, text = timed(lambda: callers.served(messages_of(1000 + index)))
            if text != expected_of(1000 + index):
                errors.append(f"stream {index}: wrong reply ({len(text)} chars)")
            else:
                firsts[index] = first
        except Exception as exc:  # counted and printed
            errors.append(f"stream {index}: {exc!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    failures.extend(f"{streams} concurrent: {e}" for e in errors)
    good = [f for f in firsts if f is not None]
    return {
        "streams": streams,
        "right": len(good),
        "failed": len(errors),
        "first_p50": percentile(good, 50) if good else None,
        "first_p99": percentile(good, 99) if good else None,
        "wall": wall,
    }


def bench_serve(base_url: str, *, calls: int, first_n: int, long_n: int, rounds: int, streams: int) -> dict[str, Any]:
    """The suite's measurement against the fast peer at ``base_url``: the
    medians of ``calls`` ``first_n``-chunk calls each way, the best chunks/s
    of ``rounds`` ``long_n``-chunk calls each way, ``streams`` concurrent."""
    from .protocol import expected_text, messages_for

    failures: list[str] = []
    process, served = start_serve(base_url, threads=max(32, streams))
    try:
        callers = Callers(base_url, served, max_connections=8)
        try:
            for _ in range(3):  # connections and pools open
                callers.generate(messages_for(first_n))
                callers.served(messages_for(first_n))
            short = interleaved(
                callers, lambda i: messages_for(first_n), lambda i: expected_text(first_n), calls, failures
            )
            long = interleaved(
                callers, lambda i: messages_for(long_n), lambda i: expected_text(long_n), rounds, failures
            )
            many = concurrent(
                callers, streams, lambda i: messages_for(first_n), lambda i: expected_text(first_n), failures
            )
        finally:
            callers.close()
    finally:
        stop_serve(process)

    def median(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    return {
        "first": {name: median(v["first"]) for name, v in short.items()},
        "total": {name: median(v["total"]) for name, v in short.items()},
        "chunks_per_s": {name: (long_n / min(v["total"]) if v["total"] else None) for name, v in long.items()},
        "concurrent": many,
        "failures": failures,
        "checked": 2 * calls + 2 * rounds + streams,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="warm calls per client (default 200)")
    parser.add_argument("--concurrent", type=int, default=64, help="concurrent streams (default 64)")
    args = parser.parse_args(argv)

    from myshell_sync import format_prompt
    from myshell_sync.local import LocalMyshellServer, reply_chunks

    def messages(index: int) -> list[dict]:
        return [{"role": "user", "content": f"Write a poem about love, number {index}"}]

    def expected(index: int) -> str:
        return "".join(reply_chunks(MODEL, format_prompt(messages(index))))

    failures: list[str] = []
    with LocalMyshellServer() as local:
        process, served = start_serve(local.base_url, threads=max(16, args.concurrent))
        try:
            callers = Callers(local.base_url, served, max_connections=args.concurrent)
            try:
                for warm in range(5):  # connections and pools open
                    callers.generate(messages(warm))
                    callers.served(messages(warm))
                results = interleaved(callers, messages, expected, args.calls, failures)
                print(f"warm calls, {args.calls} each, taking turns; median (p99) in ms")
                for name, figures in results.items():
                    firsts, totals = figures["first"], figures["total"]
                    print(
                        f"  {name:<12} first chunk {statistics.median(firsts) * 1e3:7.2f} "
                        f"({percentile(firsts, 99) * 1e3:.2f})   whole call {statistics.median(totals) * 1e3:7.2f}"
                    )
                ratio = statistics.median(results["serve"]["first"]) / statistics.median(results["generate()"]["first"])
                print(f"  first chunk through serve / generate(): {ratio:.2f}x")
                many = concurrent(callers, args.concurrent, messages, expected, failures)
                print(
                    f"{many['streams']} concurrent streams through serve: {many['right']} right, "
                    f"{many['failed']} failed; first chunk p50 {(many['first_p50'] or 0) * 1e3:.1f} ms, "
                    f"p99 {(many['first_p99'] or 0) * 1e3:.1f} ms; all done in {many['wall'] * 1e3:.0f} ms"
                )
            finally:
                callers.close()
        finally:
            stop_serve(process)
    for failure in failures[:5]:
        print("  ", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
