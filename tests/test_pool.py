"""The WebSocket connection pool of a long-lived client: reuse, concurrency,
liveness, retries, shutdown (close, fork, a process ending) and an in-process soak."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import POEM, client_sockets, eventually, open_fds, run_threads, ws_pool
from scripted import ScriptedServer

from myshell_sync import (
    ClientClosedError,
    ConnectionLostError,
    Myshell,
    MyshellError,
    MyshellTimeoutError,
    Timeout,
    models,
)
from myshell_sync.local import reply_chunks
from myshell_sync.transports._pool import backoff_delay

MODELS = sorted(models)


def ask(client, model, prompt, **options):
    return "".join(client.generate(model, [{"role": "user", "content": prompt}], **options))


def test_warm_calls_reuse_one_connection(local_server, client):
    client.connect()
    assert local_server.connects == 1
    for i in range(5):
        assert ask(client, "gpt-4", f"q{i}") == f"gpt-4: q{i}"
    assert local_server.connects == 1
    assert ws_pool(client).opened == 1


def test_32_threads_times_5_calls_get_exactly_their_own_replies(local_server):
    local_server.chunk_delay = 0.001  # replies on one socket interleave
    results = {}
    errors = []

    def worker(n):
        try:
            for k in range(5):
                model = MODELS[(n + k) % 3]
                prompt = f"thread {n} call {k} " + "word " * (n % 7)
                results[(n, k)] = (model, prompt, ask(client, model, prompt))
        except Exception as exc:  # reported below
            errors.append(exc)

    with Myshell(local_server.base_url, captcha_delay=0, timeout=30) as client:
        run_threads([threading.Thread(target=worker, args=(n,)) for n in range(32)], 60)
        connections = ws_pool(client).opened
    assert not errors
    assert len(results) == 160
    for model, prompt, text in results.values():
        assert text == "".join(reply_chunks(model, prompt))
    assert connections <= 8


def test_same_bot_requests_use_different_connections(local_server):
    local_server.chunk_delay = 0.05
    with Myshell(local_server.base_url, captcha_delay=0) as client:
        first = client.generate("gpt-4", [{"role": "user", "content": "one two three"}])
        second = client.generate("gpt-4", [{"role": "user", "content": "four five six"}])
        other = client.generate("samantha", [{"role": "user", "content": "seven"}])
        next(first), next(second), next(other)
        assert local_server.connects == 2
        assert sorted(c.in_flight for c in ws_pool(client).connections()) == [1, 2]
        for gen in (first, second, other):
            gen.close()


def test_full_pool_waits_then_times_out(local_server):
    local_server.reply_delay = 30
    with Myshell(local_server.base_url, captcha_delay=0, max_connections=1, timeout=10) as client:
        busy = client.generate("gpt-4", [{"role": "user", "content": "slow"}])
        holder = threading.Thread(target=lambda: pytest.raises(MyshellError, list, busy))
        holder.start()
        assert local_server.wait_for(lambda s: len(s.requests) == 1, 5)
        started = time.monotonic()
        with pytest.raises(MyshellTimeoutError, match="max_connections"):
            ask(client, "gpt-4", "must wait", timeout=Timeout(connect=0.3, first_chunk=10, idle=10))
        # Timeout.connect bounds the wait for a pooled connection, not the holder's 30 s
        assert 0.3 <= time.monotonic() - started < 10
    holder.join(5)


def test_full_pool_hands_over_a_released_connection(local_server):
    local_server.chunk_delay = 0.02
    with Myshell(local_server.base_url, captcha_delay=0, max_connections=1, timeout=10) as client:
        texts = []
        run_threads(
            [threading.Thread(target=lambda i=i: texts.append(ask(client, "gpt-4", f"n{i}"))) for i in range(4)], 20
        )
    assert sorted(texts) == [f"gpt-4: n{i}" for i in range(4)]
    assert local_server.connects == 1


def test_a_sent_request_is_never_replayed(local_server, client):
    local_server.drop_after = 0
    with pytest.raises(ConnectionLostError):
        ask(client, "gpt-4", "once")
    assert len(local_server.requests) == 1


def test_connection_dead_before_sending_is_replaced(local_server):
    # the connection dies during the captcha delay: nothing was sent yet, so
    # the request goes out on a fresh connection
    with Myshell(local_server.base_url, captcha_delay=0.5) as client:
        client.connect()
        gen = client.generate("gpt-4", [{"role": "user", "content": "hello"}])
        result = []
        thread = threading.Thread(target=lambda: result.append("".join(gen)))
        thread.start()
        assert local_server.wait_for(lambda s: s.connects == 1, 5)
        local_server.disconnect_all()
        thread.join(10)
    assert result == ["gpt-4: hello"]
    assert local_server.connects == 2
    assert len(local_server.requests) == 1


def test_backoff_grows_exponentially_with_jitter():
    assert [backoff_delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert [backoff_delay(n, rand=lambda: 0.0) for n in range(3)] == [0.25, 0.5, 1.0]


def test_close_cuts_a_retry_backoff_short(monkeypatch):
    import myshell_sync.transports._pool as pool

    # every backoff 30-60 s, so that only close() can end one early
    monkeypatch.setattr(pool, "BACKOFF_BASE", 60.0)
    monkeypatch.setattr(pool, "BACKOFF_CAP", 60.0)
    refused = threading.Event()

    def refuse(peer):
        refused.set()  # close before the open packet: a connect failure

    with ScriptedServer(refuse) as server:
        client = Myshell(server.base_url, captcha_delay=0, max_retries=50)
        failures = []
        thread = threading.Thread(
            target=lambda: failures.append(pytest.raises(MyshellError, ask, client, "gpt-4", "x"))
        )
        thread.start()
        assert refused.wait(5)
        started = time.monotonic()
        client.close()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 10  # not the 30 s or more the backoff would last
    assert failures[0].type is ClientClosedError
    assert len(server.peers) == 1


def test_close_cuts_the_captcha_delay_short(local_server):
    client = Myshell(local_server.base_url, captcha_delay=60)
    errors = []
    waiting = threading.Event()

    def call():
        try:
            gen = client.generate("gpt-4", POEM)
            waiting.set()
            list(gen)
        except MyshellError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert waiting.wait(5)
    assert local_server.wait_for(lambda s: s.connects == 1, 5)
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert len(errors) == 1 and isinstance(errors[0], ClientClosedError)
    assert local_server.requests == []


def test_idle_connections_are_closed(local_server):
    with Myshell(local_server.base_url, captcha_delay=0, idle_close=0.3) as client:
        ask(client, "gpt-4", "hi")
        assert local_server.wait_for(lambda s: s.disconnects == 1, 5)
        assert ws_pool(client).connections() == []
        assert ask(client, "gpt-4", "again") == "gpt-4: again"
        assert local_server.connects == 2


def test_close_with_a_silent_server_returns_within_close_timeout():
    requested = threading.Event()

    def play(peer):
        peer.handshake()
        peer.recv_event()
        requested.set()
        peer.stopping.wait(30)  # never answers, never reads again

    with ScriptedServer(play) as server:
        client = Myshell(server.base_url, captcha_delay=0, close_timeout=0.5, timeout=30)
        errors = []
        gen = client.generate("gpt-4", [{"role": "user", "content": "x"}])
        thread = threading.Thread(target=lambda: errors.append(pytest.raises(MyshellError, list, gen)))
        thread.start()
        assert requested.wait(5)
        started = time.monotonic()
        client.close()
        elapsed = time.monotonic() - started
        thread.join(5)
    assert elapsed < 3  # close_timeout (0.5 s), not the default 5 s nor the server's 30 s
    assert errors[0].type is ClientClosedError


def test_fifty_dropped_clients_leave_the_thread_count_bounded(local_server):
    baseline = threading.active_count()
    # Only what this test allocates is collected: late in a full run, fifty full
    # collections of the whole heap took over a minute on a loaded machine.
    gc.freeze()
    try:
        for i in range(50):
            client = Myshell(local_server.base_url, captcha_delay=0)
            ask(client, "gpt-4", f"dropped {i}")
            del client
            gc.collect()
            assert threading.active_count() <= baseline + 2
    finally:
        gc.unfreeze()
    assert eventually(lambda: threading.active_count() == baseline, 10)
    assert eventually(lambda: client_sockets(local_server.port) == 0, 10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_connection(local_server, client):
    assert ask(client, "gpt-4", "parent") == "gpt-4: parent"
    (parent_conn,) = ws_pool(client).connections()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            text = ask(client, "gpt-4", "child")
            os.write(write_end, json.dumps([text, ws_pool(client).opened]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(report) == ["gpt-4: child", 1]
    assert local_server.connects == 2
    # the parent's connection is untouched and still serves
    assert parent_conn.alive
    assert ask(client, "gpt-4", "parent again") == "gpt-4: parent again"
    assert ws_pool(client).connections() == [parent_conn]


def _soak(server, calls, abandoned):
    baseline_threads = threading.active_count()
    baseline_fds = open_fds()
    with Myshell(server.base_url, captcha_delay=0) as client:
        for i in range(calls):
            assert ask(client, MODELS[i % 3], f"call {i}") == f"{MODELS[i % 3]}: call {i}"
        for i in range(abandoned):
            gen = client.generate(MODELS[i % 3], [{"role": "user", "content": f"abandoned {i} a b c"}])
            next(gen)
            gen.close()
            # The bot stays busy on that connection until its reply ends there.
            assert eventually(lambda: all(c.draining == 0 for c in ws_pool(client).connections()))
        assert threading.active_count() <= baseline_threads + 2
        assert ws_pool(client).opened == 1
    assert threading.active_count() == baseline_threads
    assert client_sockets(server.port) == 0
    assert server.wait_for(lambda s: s.disconnects == 1, 5)
    # the in-process server closes its side of the socket on its own schedule
    assert eventually(lambda: open_fds() <= baseline_fds)


def test_soak_in_process_short(local_server):
    _soak(local_server, calls=200, abandoned=50)


@pytest.mark.slow
def test_soak_in_process_long(local_server):
    _soak(local_server, calls=2000, abandoned=500)


def _run_script(code, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_script_that_never_closes_exits_promptly():
    proc = _run_script(
        """
        from myshell_sync import Myshell
        from myshell_sync.local import LocalMyshellServer
        server = LocalMyshellServer().start()
        client = Myshell(server.base_url, captcha_delay=0)
        print("".join(client.generate("gpt-4", [{"role": "user", "content": "bye"}])), flush=True)
        """
    )
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out.strip() == "gpt-4: bye"


def test_ctrl_c_lands_quickly_and_cancels_the_request():
    import signal

    proc = _run_script(
        """
        import signal
        import threading
        from myshell_sync import Myshell
        from myshell_sync.local import LocalMyshellServer
        # as in a terminal (a background job may inherit SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with LocalMyshellServer(reply_delay=60) as server:
            with Myshell(server.base_url, captcha_delay=0) as client:
                def announce():
                    if server.wait_for(lambda s: len(s.requests) == 1, 10):
                        print("waiting", flush=True)
                threading.Thread(target=announce, daemon=True).start()
                try:
                    list(client.generate("gpt-4", [{"role": "user", "content": "x"}]))
                except KeyboardInterrupt:
                    in_flight = sum(c.in_flight for c in client._transport.pool.connections())
                    print("interrupted", in_flight, flush=True)
        """
    )
    try:
        assert proc.stdout.readline().strip() == "waiting"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        line = proc.stdout.readline().strip()
        landed = time.monotonic() - sent
        proc.wait(15)
    finally:
        proc.kill()
        proc.communicate()
    assert line == "interrupted 0"
    assert landed < 1.0
    assert proc.returncode == 0
