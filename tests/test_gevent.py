"""Issue 7: the client under gevent monkey-patching (gunicorn's gevent workers).

``monkey.patch_all()`` must run before anything else is imported, so the
client runs in a fresh interpreter; the local servers run here, unpatched.
The child reports what it saw as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from myshell_sync.local import LocalMyshellServer, reply_chunks

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
pytest.importorskip("gevent", reason="the gevent test needs gevent (in the test extra)")

CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import json
    import sys
    import threading
    import time

    import gevent
    from myshell_sync import ClientClosedError, Myshell, MyshellTimeoutError, Timeout

    base_url, silent_url = sys.argv[1], sys.argv[2]
    report = {"patched": monkey.is_module_patched("socket") and monkey.is_module_patched("threading")}

    def user(text):
        return [{"role": "user", "content": text}]

    def wait_until(predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            gevent.sleep(0.01)

    def waiting(client, transport):
        # whether a request is in flight (so close() has something to wake)
        if transport == "websocket":
            return any(c.in_flight for c in client._transport.pool.connections())
        return bool(client._transport._active)

    for transport, model in (("websocket", "gpt-4"), ("http", "assistant")):
        seen = report[transport] = {}
        with Myshell(base_url, transport=transport, captcha_delay=0, timeout=10) as client:
            # a basic call, while another greenlet keeps running
            ticks = []
            ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(1000)])
            seen["call"] = list(client.generate(model, user("hello from gevent")))
            seen["ticks_during_call"] = len(ticks)
            ticker.kill()
            # a cancellation: break after the first chunk of a slow reply
            gen = client.generate(model, user("a b c d e f g h i j"))
            seen["first"] = next(gen)
            gen.close()
            if transport == "websocket":
                seen["in_flight_after_break"] = sum(c.in_flight for c in client._transport.pool.connections())
            seen["after_break"] = "".join(client.generate(model, user("still works")))
            # ten greenlets at once
            jobs = [gevent.spawn(lambda i=i: "".join(client.generate(model, user(f"greenlet {i}"))))
                    for i in range(10)]
            gevent.joinall(jobs, timeout=30)
            seen["greenlets"] = [job.value for job in jobs]
        # a timeout, and close() waking a waiting greenlet, against a bot that never answers
        with Myshell(silent_url, transport=transport, captcha_delay=0,
                     timeout=Timeout(connect=5, first_chunk=0.3, idle=0.3)) as client:
            started = time.monotonic()
            try:
                list(client.generate(model, user("x")))
            except MyshellTimeoutError:
                seen["timeout_after"] = time.monotonic() - started
        client = Myshell(silent_url, transport=transport, captcha_delay=0, timeout=30)
        waiter = gevent.spawn(lambda: list(client.generate(model, user("x"))))
        wait_until(lambda: waiting(client, transport))
        started = time.monotonic()
        client.close()
        waiter.join(5)
        seen["close_woke"] = type(waiter.exception).__name__
        seen["close_after"] = time.monotonic() - started

    report["threads_left"] = [t.name for t in threading.enumerate() if t.name.startswith("myshell-")]
    print(json.dumps(report), flush=True)
    """
)


def test_basic_call_and_cancellation_under_gevent_monkey_patching():
    with LocalMyshellServer(chunk_delay=0.02) as server, LocalMyshellServer(reply_delay=60) as silent:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, server.base_url, silent.base_url], capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["patched"]
    for transport, name in (("websocket", "gpt-4"), ("http", "assistant")):
        seen = report[transport]
        assert seen["call"] == reply_chunks(name, "hello from gevent")
        assert seen["ticks_during_call"] > 0  # the hub kept running while the call waited
        assert seen["first"] == f"{name}: "
        if transport == "websocket":
            assert seen["in_flight_after_break"] == 0
        assert seen["after_break"] == f"{name}: still works"
        assert seen["greenlets"] == [f"{name}: greenlet {i}" for i in range(10)]
        assert 0.3 <= seen["timeout_after"] < 10  # Timeout.idle, not the bot's 60 s
        assert seen["close_woke"] == "ClientClosedError"
        assert seen["close_after"] < 10  # close() woke it, not the 30 s timeout
    assert report["threads_left"] == []
