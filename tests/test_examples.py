"""The example scripts, run with --local as a user would (plus their helpers in-process)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
import requests
from helpers import EXAMPLES, load_example, ws_pool

from myshell_sync import Myshell
from myshell_sync._sse import SSEDecoder
from myshell_sync.local import LocalMyshellServer


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_quickstart_local():
    result = run_example("quickstart", "--local", "hello quickstart")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "gpt-4: hello quickstart\n"


def test_conversation_sends_the_history_each_turn():
    result = run_example("conversation", "--local", "I am Ada.", "Who am I?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n\n")[:2] == [
        "you> I am Ada.\nbot> gpt-4: I am Ada.",
        # The local bot echoes its prompt: the second one carried the first turn.
        "you> Who am I?\nbot> gpt-4: User: I am Ada.\nAssistant: gpt-4: I am Ada.\nUser: Who am I?\nAssistant:",
    ]


def test_converse_returns_the_history():
    conversation = load_example("conversation")
    with LocalMyshellServer() as server, Myshell(server.base_url, captcha_delay=0, timeout=10) as client:
        history = conversation.converse(client, "gpt-4", ["a", "b"], system="be kind")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]  # system= is apart
    assert history[1]["content"] == "gpt-4: System: be kind\nUser: a\nAssistant:"
    assert server.requests[1]["text"].startswith("System: be kind\nUser: a\nAssistant: gpt-4:")


def test_threads_script_answers_every_prompt():
    result = run_example("threads", "--local", "-w", "2", "one", "two", "three")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "'one' -> gpt-4: one",
        "'two' -> gpt-4: two",
        "'three' -> gpt-4: three",
    ]


def test_threads_share_one_client_concurrently():
    threads = load_example("threads")
    prompts = [f"prompt {i}" for i in range(6)]
    with LocalMyshellServer(chunk_delay=0.05) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=10, max_connections=3) as client:
            replies = threads.ask_all(client, "gpt-4", prompts, workers=3)
            pooled = len(ws_pool(client).connections())
    assert replies == [f"gpt-4: {p}" for p in prompts]
    # Requests to one bot never share a connection, so overlapping ones opened more.
    assert server.connects == pooled >= 2


def _read_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"no line in time: {data!r}"
        if select.select([fd], [], [], left)[0]:
            piece = os.read(fd, 4096)
            assert piece, f"end of output: {data!r} {proc.stderr.read()!r}"
            data += piece
    return data.decode()


@pytest.mark.extras  # Flask
def test_flask_script_serves_the_page_with_local():
    pytest.importorskip("flask")
    code = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"sys.argv = ['flask_app.py', '--local', '--port', '0']; "
        f"runpy.run_path({str(EXAMPLES / 'flask_app.py')!r}, run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = _read_line(proc)
        url = line.split()[2]
        assert url.startswith("http://127.0.0.1:")
        with requests.get(url + "stream", params={"prompt": "from the script"}, timeout=10) as response:
            events: list = SSEDecoder().feed(response.content)
        assert "".join(e.data for e in events if e.event == "message") == "samantha: from the script"
        assert events[-1].event == "end"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
