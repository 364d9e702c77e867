"""Scenarios in fresh processes: concurrent streams and threads, memory, import time.

The concurrent streams (row 3, and the growth rows for every transport) and
the memory rows run the benchmark's own command line with ``--child`` in a
new interpreter (see :func:`run_child`), so that process imports the same
modules as the benchmark; import times are taken in bare interpreters.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from .clients import TRANSPORT_MODELS
from .measure import Checker, count_threads_and_sockets, os_thread_count, rotated, rss_bytes, settled_rss, socket_count
from .peer import RELEASE_PATH
from .process import python_command
from .protocol import API_KEY, expected_text, prompt_for

THREAD_MODELS = ("samantha", "gpt-3.5-turbo", "gpt-4")
SNAPSHOT_CHUNKS = 50  # reply size of the untimed round that counts threads


def _client(base_url: str, transport: str, max_connections: int) -> Any:
    from myshell_sync import Myshell

    options: dict[str, Any] = {"api_key": API_KEY} if transport == "openapi" else {}
    return Myshell(base_url, captcha_delay=0, transport=transport, max_connections=max_connections, **options)


def child_threads(base_url: str, threads: int, n: int, rounds: int, transport: str = "websocket") -> dict[str, Any]:
    """``threads`` threads on one client, each streaming an ``n``-chunk reply
    (max_connections=threads; on the WebSocket the models rotate over
    THREAD_MODELS, elsewhere every thread asks the transport's one model).

    An untimed first round opens the connections and, once every thread
    holds its first chunk, counts this process's threads and sockets with
    all ``threads`` streams in flight. Peaks during the timed rounds are
    sampled by the parent (see ``run_child``).
    """
    checker = Checker()
    rss_before = rss_bytes()
    client = _client(base_url, transport, threads)
    models = THREAD_MODELS if transport == "websocket" else (TRANSPORT_MODELS[transport],)
    snapshot: dict[str, int] = {}

    def one_round(size: int, label: str, pause: bool) -> float | None:
        start = threading.Barrier(threads + 1)
        holding = threading.Barrier(threads + 1)
        counted = threading.Event()
        ended = [0.0] * threads

        def worker(i: int) -> None:
            model = models[i % len(models)]
            start.wait()
            try:
                chunks = client.generate(model, [{"role": "user", "content": prompt_for(size)}])
                parts = [next(chunks)]
                if pause:
                    holding.wait()
                    counted.wait()
                parts.extend(chunks)
            except Exception as exc:
                checker.failed(f"{label} thread {i}", exc)
                if pause:
                    holding.abort()
                return
            ended[i] = time.perf_counter()
            checker.check(f"{label} thread {i}", "".join(parts), size)

        workers = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(threads)]
        for thread in workers:
            thread.start()
        start.wait()
        started = time.perf_counter()
        if pause:
            try:
                holding.wait()
                snapshot["threads"] = os_thread_count()
                snapshot["sockets"] = socket_count()
            except threading.BrokenBarrierError:
                pass
            counted.set()
        for thread in workers:
            thread.join()
        if not all(ended):
            return None
        return max(ended) - started

    try:
        one_round(min(n, SNAPSHOT_CHUNKS), "threads snapshot", pause=True)
        rates = []
        for r in range(rounds):
            wall = one_round(n, f"threads round {r + 1}", pause=False)
            if wall is not None:
                rates.append(threads * n / wall)
    finally:
        client.close()
    in_flight_threads = snapshot.get("threads", -1)
    return {
        "chunks_per_s": max(rates, default=None),
        "snapshot_threads": in_flight_threads,
        "snapshot_library_threads": in_flight_threads - 1 - threads,
        "snapshot_connections": snapshot.get("sockets", -1),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_before": rss_before,
        "checked": checker.checked,
        "problems": checker.problems,
    }


def child_memory(base_url: str, streams: int, n: int, transport: str = "websocket") -> dict[str, Any]:
    """RSS of an idle client with one warm connection, then of ``streams``
    paused streams, each having read its first chunk of an ``n``-chunk reply.

    On the WebSocket they ask distinct bot uids (so they may share that
    connection); over HTTP each has its own connection and reply thread
    (max_connections=streams)."""
    checker = Checker()
    rss_import = settled_rss()
    websocket = transport == "websocket"
    # Over HTTP the peer holds the rest of each reply back until released,
    # so every paused stream keeps its reply thread and connection meanwhile.
    hold = "" if websocket else " HOLD"
    client = _client(base_url, transport, 8 if websocket else streams)
    model = TRANSPORT_MODELS[transport]
    try:
        client.connect(model)
        checker.check(
            "memory warm-up", "".join(client.generate(model, [{"role": "user", "content": prompt_for(n)}])), n
        )
        rss_idle = settled_rss()
        sockets_idle = socket_count()
        paused = []
        for k in range(streams):
            chunks = client.generate(
                f"{k + 1:032x}" if websocket else model, [{"role": "user", "content": prompt_for(n) + hold}]
            )
            paused.append((next(chunks), chunks))
        rss_streams = settled_rss()
        sockets_streams = socket_count()
        threads_streams = os_thread_count()
        if hold:
            import requests

            requests.post(base_url + RELEASE_PATH, timeout=10).raise_for_status()
        for k, (first, chunks) in enumerate(paused):
            checker.check(f"memory stream {k}", first + "".join(chunks), n)
        del paused
    finally:
        client.close()
    text_bytes = len(expected_text(n).encode())
    per_stream = (rss_streams - rss_idle) / streams
    return {
        "rss_import": rss_import,
        "rss_idle": rss_idle,
        "idle_delta": rss_idle - rss_import,
        "connections_idle": sockets_idle,
        "connections_streams": sockets_streams,
        "threads_streams": threads_streams,
        "per_stream": per_stream,
        "text_bytes": text_bytes,
        "per_stream_net": per_stream - text_bytes,
        "checked": checker.checked,
        "problems": checker.problems,
    }


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``benchmarks.cli --child ...`` in a new interpreter; its JSON
    result, plus the peak thread and socket counts of that process, sampled
    from here every 2 ms (a sampler inside the child would wait for the GIL
    behind the threads it counts)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            python_command("benchmarks.cli", "--child", *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            text=True,
        )
        deadline = time.monotonic() + timeout
        peak_threads = peak_sockets = 0
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"child {args[0]} took longer than {timeout:g} s")
            threads, sockets = count_threads_and_sockets(proc.pid)
            peak_threads = max(peak_threads, threads)
            peak_sockets = max(peak_sockets, sockets)
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0 or not stdout.strip():
        raise RuntimeError(f"child {args[0]} exited {proc.returncode}: {stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_threads"] = peak_threads
    result["peak_sockets"] = peak_sockets
    return result


# --------------------------------------------------------------------------
# Scenario 5: import time, in fresh interpreters
# --------------------------------------------------------------------------

IMPORTS = {
    "myshell_sync": "import myshell_sync",
    "requests + websocket": "import requests, websocket",
    "bare interpreter": "pass",
}


def _importtime_us(stderr: str) -> int:
    """Sum of the cumulative -X importtime of the top-level imports."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2][1:]
        if name and not name.startswith(" ") and name.strip() in ("myshell_sync", "requests", "websocket"):
            total += int(fields[1])
    return total


def bench_import(runs: int) -> dict[str, dict[str, float]]:
    """Median -X importtime (us) and median wall time (s) of each import.

    The interpreters start in an empty directory (``-c`` puts the current
    directory first on sys.path), with the measured myshell_sync's folder on
    ``PYTHONPATH``, and must import the same myshell_sync file as this process.
    """
    import shutil
    import tempfile

    import myshell_sync

    walls: dict[str, list[float]] = {name: [] for name in IMPORTS}
    import_us: dict[str, list[int]] = {name: [] for name in IMPORTS}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    # The measured myshell_sync first (run from a clone next to an installed
    # copy, the clone's is the one measured).
    parent = os.path.dirname(os.path.dirname(os.path.abspath(myshell_sync.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (parent, env.get("PYTHONPATH", "")) if p)
    empty = tempfile.mkdtemp(prefix="myshell-bench-")
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import myshell_sync; print(myshell_sync.__file__)"],
            check=True,
            env=env,
            cwd=empty,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if os.path.realpath(where) != os.path.realpath(myshell_sync.__file__):
            raise RuntimeError(f"a fresh interpreter imports {where}, not the measured {myshell_sync.__file__}")
        for r in range(runs + 1):  # round 0 warms the .pyc caches and is dropped
            for name in rotated(list(IMPORTS), r):
                code = IMPORTS[name]
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=empty)
                wall = time.perf_counter() - started
                timed = subprocess.run(
                    [sys.executable, "-X", "importtime", "-c", code],
                    check=True,
                    env=env,
                    cwd=empty,
                    capture_output=True,
                    text=True,
                )
                if r:
                    walls[name].append(wall)
                    import_us[name].append(_importtime_us(timed.stderr))
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    return {
        name: {"wall_s": statistics.median(walls[name]), "importtime_us": statistics.median(import_us[name])}
        for name in IMPORTS
    }
