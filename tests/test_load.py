"""Load and soak on both transports: 200 concurrent streams against a slow bot,
and benchmarks/soak.py in a fresh process (its figures go to RELIABILITY.md).

The in-process soak of the WebSocket pool is in test_pool.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from helpers import ROOT, run_threads, ws_pool

from myshell_sync import Myshell
from myshell_sync.local import LocalMyshellServer, reply_chunks


@pytest.mark.parametrize("transport", ["websocket", "http"])
def test_200_concurrent_streams_against_a_slow_bot_are_complete_and_uncrossed(transport):
    count = 200
    names = [f"bot{i:03d}" for i in range(count)]
    if transport == "websocket":
        bots = {f"{i:032x}": name for i, name in enumerate(names)}
        server = LocalMyshellServer(bots=bots, chunk_delay=0.02)
    else:
        bots = {str(1000 + i): name for i, name in enumerate(names)}
        server = LocalMyshellServer(http_bots=bots, chunk_delay=0.02)
    models = list(bots)
    barrier = threading.Barrier(count, timeout=30)
    results: dict = {}
    errors: list = []

    def worker(i: int) -> None:
        prompt = f"stream {i} " + " ".join(f"w{i}x{k}" for k in range(8))
        try:
            gen = client.generate(models[i], [{"role": "user", "content": prompt}])
            chunks = [next(gen)]
            barrier.wait()  # all 200 streams are open at once
            chunks.extend(gen)
            results[i] = (chunks, reply_chunks(names[i], prompt))
        except Exception as exc:  # reported below
            errors.append((i, exc))
            barrier.abort()

    with server:
        with Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=30) as client:
            run_threads([threading.Thread(target=worker, args=(i,)) for i in range(count)], 60)
            opened = ws_pool(client).opened if transport == "websocket" else None
    assert not errors, errors[:3]
    assert len(results) == count
    for got, expected in results.values():
        assert got == expected
    if transport == "websocket":
        assert opened <= 8  # 200 streams multiplexed on the pool's connections


# ---------------------------------------------------------------------------
# Soak: benchmarks/soak.py in a fresh process


def run_soak(*args: str, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _check_soak(report: dict) -> None:
    for run in report["runs"]:
        before, after = run["before"], run["after"]
        assert run["failures"] == 0
        assert after["threads"] == before["threads"], run
        assert after["fds"] == before["fds"], run
        assert after["rss_kb"] - before["rss_kb"] <= 10 * 1024, run


def test_soak_script_short():
    report = run_soak("--calls", "500", "--abandoned", "100", timeout=120)
    assert [run["transport"] for run in report["runs"]] == ["websocket", "http"]
    _check_soak(report)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_soak_script_long():
    report = run_soak("--calls", "10000", "--abandoned", "2000", timeout=900)
    _check_soak(report)
    print(json.dumps(report, indent=2))
