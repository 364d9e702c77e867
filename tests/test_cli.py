"""The ``myshell-sync`` console script, run as a subprocess against local servers.

Fault switches live on a LocalMyshellServer in this process; the CLI reaches
it with ``--base-url``. ``--local`` runs start the CLI's own embedded server.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from helpers import CLI, SilentServer, eventually

from myshell_sync import Myshell, _cli, models
from myshell_sync._cli import EXIT_CODES, SPINNER_FRAMES, exit_code_for
from myshell_sync.local import LocalMyshellServer, reply_chunks

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
SLOW_PROMPT = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture(scope="module", autouse=True)
def console_script() -> None:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: install the package (pip install -e .) to get the console script")
    # The subprocesses must run the code under test, not another install of it.
    for command in ([str(CLI)], [sys.executable, "-m", "myshell_sync"]):
        result = subprocess.run(
            [*command, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONVERBOSE": "1"},
            stdin=subprocess.DEVNULL,
        )
        if f"code object from {_cli.__file__}" not in result.stderr:
            pytest.fail(f"{command[-1]} does not import {_cli.__file__}: set PYTHONPATH to this checkout")


def child_env(**extra: str) -> dict[str, str]:
    """This environment without a token (so auth tests are real) plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MYSHELL_TOKEN", "MYSHELL_API_KEY")}
    env.update(extra)
    return env


def run_cli(
    *args: str, input: str | None = None, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CLI), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def remote(srv: LocalMyshellServer, *args: str) -> list[str]:
    """``chat``-style options that point the CLI at ``srv`` with no captcha delay."""
    return [*args, "--base-url", srv.base_url, "--captcha-delay", "0", "--timeout", "10"]


def read_until(fd: int, done: Callable[[bytes], bool], timeout: float = 15) -> bytes:
    """Read ``fd`` until ``done(everything read)``; fail after ``timeout`` or at EOF."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; read so far: {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            piece = os.read(fd, 4096)
        except OSError:  # a pty whose other side closed
            piece = b""
        if not piece:
            raise AssertionError(f"end of output; read so far: {data!r}")
        data += piece
    return data


def stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if it is still running and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


# ---------------------------------------------------------------------------
# Streaming, input, output formats


def test_chat_streams_the_reply_while_the_bot_is_still_writing(local_server):
    local_server.chunk_delay = 0.25  # 3 s of chunks after the first
    reply = "".join(reply_chunks("samantha", SLOW_PROMPT))
    proc = subprocess.Popen(
        [str(CLI), "chat", SLOW_PROMPT, *remote(local_server)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        first = read_until(proc.stdout.fileno(), lambda data: len(data) > 0)
        assert reply.encode().startswith(first)
        assert local_server.completed == []  # the bot has not written its last chunk yet
        out, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert (first + out).decode() == reply + "\n"
    assert err == b""  # no spinner when piped


@pytest.mark.parametrize("prompt_args", [["-"], []], ids=["dash", "piped"])
def test_chat_reads_the_prompt_from_stdin(local_server, prompt_args):
    result = run_cli("chat", *prompt_args, *remote(local_server), input="from stdin\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "samantha: from stdin\n"
    assert local_server.requests[0]["text"] == "from stdin"


def test_chat_sends_model_and_system_message(local_server):
    result = run_cli("chat", "hi", "-m", "gpt-4", "-s", "be brief", *remote(local_server))
    assert result.returncode == 0, result.stderr
    request = local_server.requests[0]
    assert request["botUid"] == models["gpt-4"]
    assert request["text"] == "System: be brief\nUser: hi\nAssistant:"
    assert result.stdout == "gpt-4: System: be brief\nUser: hi\nAssistant:\n"


def test_json_prints_one_object_per_chunk_then_the_end(local_server):
    result = run_cli("chat", "json please", "--json", *remote(local_server))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["text"] for e in events[:-1]] == reply_chunks("samantha", "json please")
    assert all(e["type"] == "chunk" for e in events[:-1])
    end = events[-1]
    assert end["type"] == "end"
    assert end["text"] == "samantha: json please"
    assert end["req_id"] == local_server.requests[0]["reqId"]
    assert end["timings"]["total"] >= end["timings"]["first_chunk"] > 0


def test_no_stream_prints_the_whole_reply_once(local_server):
    result = run_cli("chat", "all at once", "--no-stream", *remote(local_server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "samantha: all at once\n"


def test_http_transport(local_server):
    result = run_cli("chat", "over http", "--transport", "http", *remote(local_server))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "assistant: over http\n"
    assert len(local_server.http_requests) == 1 and local_server.requests == []


# ---------------------------------------------------------------------------
# Output encoding: what stdout cannot encode is replaced, never a traceback

NON_ASCII_PROMPT = "caf\u00e9 \u2615 \u65e5\u672c \U0001f600"
MODES = pytest.mark.parametrize("mode", [[], ["--json"], ["--no-stream"]], ids=["plain", "json", "no-stream"])


def run_cli_bytes(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``run_cli`` with extra environment variables, stdout and stderr as bytes."""
    return subprocess.run(
        [str(CLI), *args], capture_output=True, timeout=30, env=child_env(**env), stdin=subprocess.DEVNULL
    )


def check_output(mode: list[str], stdout: str, reply: str, shown: str) -> None:
    """``stdout`` is ``reply`` as ``mode`` prints it, the text printed as ``shown``."""
    if mode == ["--json"]:
        events = [json.loads(line) for line in stdout.splitlines()]
        assert "".join(e["text"] for e in events[:-1]) == reply  # JSON loses nothing
        assert events[-1]["type"] == "end" and events[-1]["text"] == reply
    else:
        assert stdout == shown + "\n"


@MODES
def test_chat_replaces_what_an_ascii_stdout_cannot_encode(local_server, mode):
    reply = "samantha: " + NON_ASCII_PROMPT
    result = run_cli_bytes("chat", NON_ASCII_PROMPT, *mode, *remote(local_server), PYTHONIOENCODING="ascii")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr and result.stderr == b""
    check_output(mode, result.stdout.decode("ascii"), reply, reply.encode("ascii", "replace").decode())


@MODES
def test_chat_prints_non_ascii_unchanged_when_stdout_can_encode_it(local_server, mode):
    reply = "samantha: " + NON_ASCII_PROMPT
    result = run_cli_bytes("chat", NON_ASCII_PROMPT, *mode, *remote(local_server), PYTHONIOENCODING="utf-8")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    check_output(mode, result.stdout.decode("utf-8"), reply, reply)


LONE_SURROGATE_CHUNKS = ["samantha: ", "half \ud83d", " emoji"]


class FakeStream:
    """What ``_reply`` reads of a ``Stream``: its chunks, then text, req_id, timings."""

    def __init__(self, chunks: list[str]) -> None:
        self._chunks = chunks
        self.text = "".join(chunks)
        self.req_id = "req-1"
        self.timings = SimpleNamespace(connect=0.0, first_chunk=0.0, total=0.0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._chunks)


class SurrogateClient:
    """A stand-in for ``Myshell`` whose reply holds a lone surrogate, which the
    local server cannot be made to send (a prompt cannot carry one: its
    request signature cannot encode it)."""

    transport = "websocket"
    captcha_delay = 0.0

    def stream(self, model: str | None, messages: list[dict[str, str]]) -> Any:
        return contextlib.nullcontext(FakeStream(LONE_SURROGATE_CHUNKS))


@MODES
def test_chat_replaces_a_lone_surrogate_on_a_utf8_stdout(monkeypatch, mode):
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # errors="strict"
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(_cli, "_client", lambda args: contextlib.nullcontext(SurrogateClient()))
    assert _cli.main(["chat", "hi", *mode]) == 0
    stdout.flush()
    stderr.flush()
    reply = "".join(LONE_SURROGATE_CHUNKS)
    check_output(
        mode, stdout.buffer.getvalue().decode("utf-8"), reply, reply.encode("utf-8", "replace").decode("utf-8")
    )
    assert stderr.buffer.getvalue() == b""


# ---------------------------------------------------------------------------
# Errors and exit codes


@pytest.mark.parametrize(
    "switches, extra, error, code",
    [
        ({"captcha_window": 60.0}, [], "CaptchaRequiredError", 4),
        ({"energy": 0}, [], "InsufficientEnergyError", 5),
        ({"tokens": {"the-right-token"}}, ["--token", "wrong-token-4711"], "AuthenticationError", 3),
        ({"error_event": "exception"}, [], "ServerError", 7),
        ({"reply_delay": 5.0}, ["--timeout", "0.5"], "MyshellTimeoutError", 11),
    ],
    ids=["captcha", "energy", "auth", "server", "timeout"],
)
def test_errors_give_one_line_and_their_exit_code(local_server, switches, extra, error, code):
    for name, value in switches.items():
        setattr(local_server, name, value)
    result = run_cli("chat", "hi", *remote(local_server), *extra)
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"myshell-sync: {error}: ")
    assert "Traceback" not in result.stderr
    assert "wrong-token-4711" not in result.stderr + result.stdout


def test_connection_refused_is_exit_code_9():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("chat", "hi", "--base-url", f"http://127.0.0.1:{port}", "--captcha-delay", "0")
    assert result.returncode == 9, result.stderr
    assert result.stderr.startswith("myshell-sync: MyshellConnectionError: ")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_json_reports_the_error_on_stdout_too(local_server):
    local_server.captcha_window = 60.0
    result = run_cli("chat", "hi", "--json", *remote(local_server))
    assert result.returncode == 4
    event = json.loads(result.stdout.splitlines()[-1])
    assert event["type"] == "error"
    assert event["error"] == "CaptchaRequiredError"
    assert event["exit_code"] == 4
    assert event["req_id"] == local_server.requests[0]["reqId"]


@pytest.mark.parametrize(
    "args, stdin",
    [
        (["chat", "hi", "-m", "no-such-model"], None),
        (["chat", "-"], "\n"),
        (["chat", "hi", "--local", "--base-url", "http://127.0.0.1:9"], None),
        (["chat", "hi", "--timeout", "0"], None),
        (["chat", "hi", "--transport", "carrier-pigeon"], None),
    ],
    ids=["unknown-model", "empty-prompt", "local-and-base-url", "zero-timeout", "bad-choice"],
)
def test_usage_errors_are_exit_code_2(args, stdin):
    result = run_cli(*args, input=stdin)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_every_error_class_has_its_own_code():
    codes = [code for _, code in EXIT_CODES]
    assert len(codes) == len(set(codes))
    assert set(codes).isdisjoint({0, 1, 130})
    for cls, code in EXIT_CODES:
        assert exit_code_for(cls("x") if cls.__name__ != "UnsupportedModelError" else cls("x", [])) == code


# ---------------------------------------------------------------------------
# Ctrl-C


def test_sigint_stops_the_stream_with_130_even_if_inherited_as_ignored(local_server):
    local_server.chunk_delay = 0.3
    command = " ".join([str(CLI), "chat", f"'{SLOW_PROMPT}'", *remote(local_server)])
    # `trap '' INT` makes SIGINT ignored, as a background job inherits it.
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"trap '' INT; exec {command}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        first = read_until(proc.stdout.fileno(), lambda data: b"samantha:" in data)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    assert b"twelve" not in first + out  # stopped before the end of the reply
    assert local_server.wait_for(lambda s: s.disconnects >= 1, 10)  # and hung up


# ---------------------------------------------------------------------------
# --local, models, energy, python -m


def test_local_chat_needs_no_server():
    result = run_cli("chat", "--local", "offline hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "samantha: offline hello\n"


def test_local_energy_is_real():
    result = run_cli("energy", "--local", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"energy": 100, "daily_energy": 200}


def test_energy_against_a_server_uses_the_token(local_server):
    local_server.energy = 7
    result = run_cli("energy", "--base-url", local_server.base_url, env=child_env(MYSHELL_TOKEN="t0k"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "energy: 7\ndaily energy: 200\n"
    assert "t0k" not in result.stdout + result.stderr


def test_energy_without_a_token_is_an_auth_error(local_server):
    result = run_cli("energy", "--base-url", local_server.base_url)
    assert result.returncode == 3
    assert result.stderr.startswith("myshell-sync: AuthenticationError: ")


def test_models_lists_every_model():
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["websocket"] == dict(models)
    table = run_cli("models").stdout
    assert all(name in table for name in models)


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "myshell_sync", "chat", "--local", "via -m"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "samantha: via -m\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_local_serves_until_stopped(signum):
    proc = subprocess.Popen(
        [str(CLI), "serve-local", "--port", "0", "--chunk-delay", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        line = read_until(proc.stdout.fileno(), lambda data: b"\n" in data).decode()
        base_url = line.split(" local server at ")[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        with Myshell(base_url, captcha_delay=0, timeout=10) as client:
            text = "".join(client.generate("gpt-4", [{"role": "user", "content": "served"}]))
        assert text == "gpt-4: served"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


# ---------------------------------------------------------------------------
# Terminals: interactive chat and the spinner


def start_interactive(srv: LocalMyshellServer) -> tuple[subprocess.Popen, int]:
    """An interactive ``chat`` on a pseudo-terminal: (the process, the terminal's primary fd)."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "chat", *remote(srv)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=child_env(TERM="dumb"),
        close_fds=True,
    )
    os.close(secondary)
    return proc, primary


def test_interactive_chat_keeps_the_history(local_server):
    proc, primary = start_interactive(local_server)
    try:
        read_until(primary, lambda data: b"> " in data)
        os.write(primary, b"hello\n")
        read_until(primary, lambda data: b"samantha: hello" in data and data.rstrip().endswith(b">"))
        os.write(primary, b"again\n")
        assert local_server.wait_for(lambda s: len(s.completed) == 2, 15)
        read_until(primary, lambda data: data.count(b"> ") >= 1)
        os.write(primary, b"/exit\n")
        assert proc.wait(15) == 0
    finally:
        stop(proc)
        os.close(primary)
    assert [r["text"] for r in local_server.requests] == [
        "hello",
        "User: hello\nAssistant: samantha: hello\nUser: again\nAssistant:",
    ]


def test_interactive_ctrl_c_drops_the_turn_then_leaves_with_130(local_server):
    local_server.chunk_delay = 0.2
    proc, primary = start_interactive(local_server)
    try:
        read_until(primary, lambda data: b"> " in data)
        os.write(primary, SLOW_PROMPT.encode() + b"\n")
        read_until(primary, lambda data: b"samantha:" in data)
        proc.send_signal(signal.SIGINT)  # during the reply: drop this turn only
        read_until(primary, lambda data: b"(interrupted)" in data and data.rstrip().endswith(b">"))
        local_server.chunk_delay = 0
        os.write(primary, b"after\n")
        read_until(primary, lambda data: b"samantha: after" in data and data.rstrip().endswith(b">"))
        proc.send_signal(signal.SIGINT)  # at the prompt: leave
        # input() may miss a signal that lands just before readline waits for
        # a key (CPython's readline loop); an empty line makes it look again.
        with contextlib.suppress(OSError):
            os.write(primary, b"\n")
        assert proc.wait(15) == 130
    finally:
        stop(proc)
        os.close(primary)
    assert [r["text"] for r in local_server.requests] == [SLOW_PROMPT, "after"]  # no history kept


def test_spinner_is_drawn_on_a_terminal_stderr_only(local_server):
    local_server.reply_delay = 0.3
    out_primary, out_secondary = pty.openpty()
    err_primary, err_secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "chat", "spin", *remote(local_server)],
        stdin=subprocess.DEVNULL,
        stdout=out_secondary,
        stderr=err_secondary,
        env=child_env(),
    )
    os.close(out_secondary)
    os.close(err_secondary)
    try:
        out = read_until(out_primary, lambda data: b"samantha: spin" in data)
        err = read_until(err_primary, lambda data: b"\r \r" in data)  # drawn, then erased
        assert proc.wait(15) == 0
    finally:
        stop(proc)
        os.close(out_primary)
        os.close(err_primary)
    assert any(frame.encode() in err for frame in SPINNER_FRAMES)
    assert not any(f"\r{frame}".encode() in out for frame in SPINNER_FRAMES)


# ---------------------------------------------------------------------------
# The key-based API from the command line


def test_chat_local_over_the_key_based_api_works_offline():
    from myshell_sync.local import openapi_reply

    result = run_cli("chat", "hello key", "--local", "--transport", "openapi", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "end"
    assert events[-1]["text"] == openapi_reply("gpt-4o-mini", "hello key", 0, False)
    assert events[-1]["model"] == "gpt-4o-mini"  # the model actually used, not null


def test_chat_takes_the_api_key_from_the_environment_and_never_prints_it(local_server):
    key = "sk-cli-secret-key-123456"
    local_server.api_keys = {key}
    result = run_cli(
        "chat",
        "hi",
        "--base-url",
        local_server.base_url,
        "--timeout",
        "10",
        "--json",
        env=child_env(MYSHELL_API_KEY=key),
    )
    assert result.returncode == 0, result.stderr
    assert local_server.openapi_requests[0]["headers"]["x-myshell-openapi-key"] == key
    assert key not in result.stdout + result.stderr
    bad = run_cli(
        "chat",
        "hi",
        "--base-url",
        local_server.base_url,
        "--timeout",
        "10",
        "--json",
        env=child_env(MYSHELL_API_KEY="wrong-" + key),
    )
    assert bad.returncode == 3  # AuthenticationError
    assert key not in bad.stdout + bad.stderr


def test_an_empty_base_url_is_a_usage_error():
    result = run_cli("chat", "hi", "--base-url", "")
    assert result.returncode == 2
    assert "--base-url is empty" in result.stderr and "Traceback" not in result.stderr


def test_json_end_event_names_the_default_model(local_server):
    result = run_cli("chat", "hi", "--json", *remote(local_server))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["model"] == "samantha"


def test_serve_local_banner_names_the_cli_flags_and_the_api_key():
    proc = subprocess.Popen(
        [str(CLI), "serve-local", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        line = proc.stdout.readline()
        assert "--captcha-delay 0" in line and "captcha_delay=0" in line
        assert "key-based API key: local-api-key" in line
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        stop(proc)


# ---------------------------------------------------------------------------
# Advice in the command line's terms: flags, never Python arguments (issue 11)

PYTHON_SPELLINGS = (
    "Timeout.",
    "Timeout(",
    "Myshell(",
    "None",
    "token=",
    "api_key=",
    "base_url",
    "captcha_delay",
    'transport="',
    "http_bot_ids",
    "verify=",
    "max_retries",
)


def assert_cli_terms(text: str, *flags: str) -> None:
    """``text`` names each of ``flags`` and no Python argument."""
    for flag in flags:
        assert flag in text, (flag, text)
    for spelling in PYTHON_SPELLINGS:
        assert spelling not in text, (spelling, text)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process: (exit status, stdout, stderr)."""
    try:
        code = _cli.main(list(args))
    except SystemExit as exc:  # argparse's own exit, for bad arguments
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_cli_term_is_a_flag_or_plain_words():
    from dataclasses import fields

    for field in fields(_cli.CLI_TERMS):
        assert_cli_terms(getattr(_cli.CLI_TERMS, field.name))
    assert {_cli.CLI_TERMS.timeout_connect, _cli.CLI_TERMS.timeout_first_chunk, _cli.CLI_TERMS.timeout_idle} == {
        "--timeout"
    }
    assert _cli.CLI_TERMS.timeout_total == "--max-time"


@pytest.mark.parametrize(
    "switches, extra, error, flags",
    [
        (
            {"reply_delay": 5.0},
            ["--timeout", "0.5"],
            "MyshellTimeoutError",
            ["ran out of --timeout of 0.5s;", "raise --timeout"],
        ),
        (
            {"chunk_delay": 5.0},
            ["--timeout", "0.5"],
            "MyshellTimeoutError",
            ["waiting for the next event", "ran out of --timeout of 0.5s;", "raise --timeout"],
        ),
        (
            {"reply_delay": 5.0},
            ["--max-time", "0.5"],
            "MyshellTimeoutError",
            ["the whole reply", "ran out of --max-time of 0.5s;", "raise --max-time"],
        ),
        (
            {},
            ["--max-time", "0.5", "--captcha-delay", "5"],
            "MyshellTimeoutError",
            ["waiting out --captcha-delay before the first request ran out of --max-time of 0.5s"],
        ),
        (
            {"captcha_window": 60.0},
            [],
            "CaptchaRequiredError",
            ["keep --captcha-delay at its default, or log in with --token"],
        ),
        ({"tokens": {"the-right-token"}}, ["--token", "wrong"], "AuthenticationError", ["check --token"]),
        ({"error_event": "chat_login_popup"}, [], "AuthenticationError", ["pass --token or set MYSHELL_TOKEN"]),
        ({"ws_refuse_status": 403}, [], "MyshellConnectionError", ["check --base-url, or try --transport http"]),
    ],
    ids=["first-chunk", "idle", "total", "captcha-delay-wait", "captcha", "auth", "login", "refused-upgrade"],
)
def test_errors_advise_cli_flags(capsys, local_server, switches, extra, error, flags):
    for name, value in switches.items():
        setattr(local_server, name, value)
    args = ["chat", SLOW_PROMPT, "--base-url", local_server.base_url, "--json", *extra]
    if "--captcha-delay" not in extra:
        args += ["--captcha-delay", "0"]
    if "--timeout" not in extra:
        args += ["--timeout", "10"]
    code, out, err = cli(capsys, *args)
    assert code == exit_code_for(getattr(_cli.errors, error)("x")), err
    assert err.startswith(f"myshell-sync: {error}: ") and err.count("\n") == 1
    assert_cli_terms(err, *flags)
    event = json.loads(out.splitlines()[-1])  # --json reports the same words
    assert event["type"] == "error" and f"{error}: {event['message']}" in err


def test_a_connect_timeout_names_the_flag_and_the_attempts(capsys):
    with SilentServer() as server:
        code, _, err = cli(
            capsys, "chat", "hi", "--base-url", server.base_url, "--captcha-delay", "0", "--timeout", "0.3"
        )
    assert code == 12
    assert_cli_terms(err, "ran out of --timeout of 0.3s (per attempt; attempt 3 of 3);", "raise --timeout")


def test_connection_refused_advises_base_url(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for transport in ("websocket", "http"):
        code, _, err = cli(
            capsys,
            "chat",
            "hi",
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--captcha-delay",
            "0",
            "--transport",
            transport,
        )
        assert code == 9, err
        assert_cli_terms(err, "check --base-url, the network and the proxy")


def test_the_key_based_api_advises_api_key(capsys, local_server):
    for key in ([], ["--api-key", "wrong-key"]):
        code, _, err = cli(
            capsys, "chat", "hi", "--base-url", local_server.base_url, "--timeout", "10", "--transport", "openapi", *key
        )
        assert code == 3, err
        assert_cli_terms(err, "--api-key")
    assert (
        "--transport openapi needs an API key"
        in cli(capsys, "chat", "hi", "--base-url", local_server.base_url, "--transport", "openapi")[2]
    )


@pytest.mark.parametrize(
    "args, flags",
    [
        (["-m", "no-such-model"], ["'no-such-model' (given with -m)", "gpt-4", "32-hex uid"]),
        (["-m", "gpt-4", "--transport", "http"], ["(given with -m)", "pass the bot's numeric id with -m"]),
        (
            ["-m", "samantha", "--transport", "openapi", "--api-key", "k"],
            ["(given with -m)", "the key-based API (--transport openapi) does not serve"],
        ),
    ],
    ids=["websocket", "http-websocket-name", "openapi-web-app-name"],
)
def test_an_unknown_model_is_named_as_given_with_dash_m(capsys, args, flags):
    code, out, err = cli(capsys, "chat", "hi", "--base-url", "http://127.0.0.1:9", *args)
    assert code == 2 and out == ""
    assert err.startswith("myshell-sync: UnsupportedModelError: ")
    assert_cli_terms(err, *flags)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["chat", "hi", "--timeout", "0"], "--timeout"),
        (["chat", "hi", "--timeout", "-1"], "--timeout"),
        (["chat", "hi", "--timeout", "nan"], "--timeout"),
        (["chat", "hi", "--timeout", "inf"], "--timeout"),
        (["chat", "hi", "--timeout", "soon"], "--timeout"),
        (["chat", "hi", "--max-time", "0"], "--max-time"),
        (["chat", "hi", "--captcha-delay", "-1"], "--captcha-delay"),
        (["energy", "--timeout", "0"], "--timeout"),
        (["chat", "hi", "--base-url", "ftp://example.com"], "--base-url"),
        (["chat", "hi", "--base-url", "example.com"], "--base-url"),
        (["serve-local", "--port", "70000"], "--port"),
        (["serve-local", "--chunk-delay", "-1"], "--chunk-delay"),
        (["serve-local", "--captcha-window", "x"], "--captcha-window"),
        (["serve-local", "--energy", "-1"], "--energy"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_bad_option_values_are_usage_errors_naming_the_flag(capsys, args, flag):
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert_cli_terms(err.splitlines()[-1], flag)


# ---------------------------------------------------------------------------
# --timeout bounds what its help says (issue 11)


def test_timeout_help_says_it_is_per_connect_attempt_and_max_time_bounds_the_call():
    text = " ".join(run_cli("chat", "--help").stdout.split())
    assert "seconds allowed for each connect attempt (3 at most), for the first chunk, and between chunks" in text
    assert "--max-time S seconds the whole call may take: connect attempts, captcha delay and reply" in text


@pytest.mark.parametrize(
    "limit, words",
    [
        (
            ["--timeout", "1"],
            (
                "ran out of --timeout of 1s (per attempt; attempt 3 of 3); "
                "check the server and the network, or raise --timeout"
            ),
        ),
        (["--timeout", "1", "--max-time", "1"], "ran out of --max-time of 1s (attempt 1 of 3); raise --max-time"),
    ],
    ids=["timeout", "max-time"],
)
def test_a_stalled_handshake_ends_with_the_timeout_code_and_a_true_message(limit, words):
    # The peer accepts TCP and never answers the WebSocket upgrade. --timeout 1
    # allows each of the 3 attempts 1 s (about 4 s with the backoff, measured,
    # not asserted: a loaded machine is slower); --max-time 1 the whole call.
    with SilentServer() as server:
        started = time.monotonic()
        result = run_cli("chat", "hi", "--base-url", server.base_url, "--captcha-delay", "0", *limit, timeout=30)
        elapsed = time.monotonic() - started
        assert eventually(lambda: len(server.accepted) == (3 if limit == ["--timeout", "1"] else 1))
    assert result.returncode == 12, result.stderr
    assert result.stderr.startswith("myshell-sync: ConnectTimeoutError: connecting to ws://127.0.0.1:")
    assert words in result.stderr and result.stderr.count("\n") == 1
    assert elapsed < 30
    print(f"{' '.join(limit)} against a stalled handshake: {elapsed:.2f}s")  # for the record (pytest -s)


# ---------------------------------------------------------------------------
# The captcha delay is announced on a terminal (issue 11)


def test_the_captcha_delay_is_announced_on_a_terminal_stderr(local_server):
    err_primary, err_secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(CLI), "chat", "hi", "--base-url", local_server.base_url, "--captcha-delay", "0.3", "--timeout", "10"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=err_secondary,
        env=child_env(),
    )
    os.close(err_secondary)
    try:
        err = read_until(err_primary, lambda data: b"skips the wait" in data)
        out, _ = proc.communicate(timeout=30)
    finally:
        stop(proc)
        os.close(err_primary)
    assert proc.returncode == 0
    assert out == b"samantha: hi\n"
    line = err.decode().strip()
    assert line == (
        "myshell-sync: a new connection waits 0.3s before its first request (--captcha-delay; the "
        "real service asks for a captcha sooner); --captcha-delay 0 skips the wait against a local "
        "or test server"
    )


def test_the_captcha_delay_passes_silently_when_stderr_is_piped(local_server):
    result = run_cli("chat", "hi", "--base-url", local_server.base_url, "--captcha-delay", "0.3", "--timeout", "10")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "samantha: hi\n" and result.stderr == ""


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "delay, transport, base_url, expected",
    [
        (5.0, "websocket", None, "waits 5s before its first request (--captcha-delay; the real service"),
        (5.0, "auto", "https://api.myshell.ai/", "waits 5s"),
        (5.0, "websocket", "http://127.0.0.1:8765", "--captcha-delay 0 skips the wait"),
        (0.0, "websocket", "http://127.0.0.1:8765", ""),
        (5.0, "http", "http://127.0.0.1:8765", ""),
        (5.0, "openapi", None, ""),
    ],
    ids=["default-host", "default-host-given", "other-host", "no-delay", "http", "openapi"],
)
def test_the_captcha_notice_names_the_skip_only_off_the_real_service(monkeypatch, delay, transport, base_url, expected):
    stderr = TerminalStream()
    monkeypatch.setattr(sys, "stderr", stderr)
    client = SimpleNamespace(captcha_delay=delay, transport=transport)
    _cli._captcha_notice(client, SimpleNamespace(base_url=base_url))
    text = stderr.getvalue()
    assert (expected in text) if expected else text == ""
    if base_url in (None, "https://api.myshell.ai/"):
        assert "--captcha-delay 0" not in text  # the real service needs the wait


# ---------------------------------------------------------------------------
# energy --json reports its error as JSON too (issue 11)


def test_energy_json_reports_the_error_on_stdout_too(local_server):
    result = run_cli("energy", "--json", "--base-url", local_server.base_url)
    assert result.returncode == 3
    event = json.loads(result.stdout)
    assert event["type"] == "error" and event["error"] == "AuthenticationError" and event["exit_code"] == 3
    assert_cli_terms(event["message"], "myshell-sync energy needs a logged-in account", "--token")
    assert result.stderr.startswith("myshell-sync: AuthenticationError: ")


def test_energy_json_reports_a_connection_error_as_json(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = cli(capsys, "energy", "--json", "--token", "t", "--base-url", f"http://127.0.0.1:{port}")
    assert code == 9
    event = json.loads(out)
    assert (event["type"], event["error"], event["exit_code"]) == ("error", "MyshellConnectionError", 9)
    assert err.count("\n") == 1


# ---------------------------------------------------------------------------
# python -m myshell_sync.local is serve-local; the local extra missing (issue 11)

SERVERS = {
    "serve-local": [str(CLI), "serve-local"],
    "python -m myshell_sync.local": [sys.executable, "-m", "myshell_sync.local"],
}


@pytest.mark.parametrize("command", sorted(SERVERS))
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_local_server_stops_with_0_even_in_a_background_job(command, signum):
    # `trap '' INT` makes SIGINT ignored, as a shell's background job inherits it.
    line = " ".join([*SERVERS[command], "--port", "0"])
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"trap '' INT; exec {line}"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    try:
        banner = read_until(proc.stdout.fileno(), lambda data: b"\n" in data).decode()
        base_url = banner.split(" local server at ")[1].split()[0]
        with Myshell(base_url, captcha_delay=0, timeout=10) as client:
            assert "".join(client.generate("gpt-4", [{"role": "user", "content": "up"}])) == "gpt-4: up"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


@pytest.fixture
def without_the_local_extra(tmp_path) -> dict[str, str]:
    """An environment where importing socketio and aiohttp fails, as without
    the extra (stub packages first on the path; nothing is uninstalled)."""
    for name in ("socketio", "aiohttp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return child_env(PYTHONPATH=path)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "myshell_sync.local"],
        [str(CLI), "serve-local", "--port", "0"],
        [str(CLI), "chat", "--local", "hi"],
        [str(CLI), "energy", "--local"],
    ],
    ids=["python -m myshell_sync.local", "serve-local", "chat --local", "energy --local"],
)
def test_without_the_local_extra_one_line_says_what_to_install(without_the_local_extra, command):
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, env=without_the_local_extra
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        'myshell-sync: the local server needs the "local" extra (python-socketio, aiohttp): '
        'pip install ".[local]" in a clone of myshell_sync\n'
    )


def test_without_the_local_extra_the_package_imports_and_its_names_say_what_to_install(without_the_local_extra):
    code = (
        "import myshell_sync.local as local\n"
        "try:\n    local.LocalMyshellServer\nexcept ImportError as exc:\n"
        "    print(type(exc).__name__, isinstance(exc, local.MissingExtraError), exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=without_the_local_extra
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('MissingExtraError True the local server needs the "local" extra')


# ---------------------------------------------------------------------------
# Text that is not valid Unicode: one line, exit code 2 (issue 11)


@pytest.mark.parametrize("encoding", [None, "utf-8:strict"], ids=["surrogateescape", "strict"])
def test_a_non_utf8_stdin_is_a_usage_error(local_server, encoding):
    env = child_env(**({"PYTHONIOENCODING": encoding} if encoding else {}))
    result = subprocess.run(
        [str(CLI), "chat", *remote(local_server)], input=b"caf\xe9 au lait\n", capture_output=True, timeout=30, env=env
    )
    assert result.returncode == 2
    err = result.stderr.decode()
    assert err.startswith("myshell-sync: error: standard input is not valid ") and err.count("\n") == 1
    assert "0xe9" in err and "iconv" in err and "Traceback" not in err
    assert local_server.requests == []


def test_a_non_utf8_argument_is_a_usage_error(local_server):
    result = subprocess.run(
        [str(CLI).encode(), b"chat", b"caf\xe9", *map(str.encode, remote(local_server))],
        capture_output=True,
        timeout=30,
        env=child_env(),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr == (
        b"myshell-sync: error: the prompt is not valid UTF-8 text (the byte 0xe9 at "
        b"character 3); convert it first, e.g. with iconv -t UTF-8\n"
    )
    assert local_server.requests == []


@pytest.mark.parametrize("args", [["chat", "caf\udce9"], ["chat", "hi", "-s", "half \ud83d"]], ids=["prompt", "system"])
def test_a_lone_surrogate_is_a_usage_error_in_process(capsys, args):
    code, out, err = cli(capsys, *args, "--base-url", "http://127.0.0.1:9")
    assert code == 2 and out == ""
    assert "is not valid UTF-8 text" in err and err.count("\n") == 1


def test_an_interactive_line_that_is_not_utf8_is_refused_and_the_chat_goes_on(monkeypatch, capsys):
    # (readline, when loaded, drops such bytes itself; without it they reach the CLI.)
    lines = iter(["caf\udce9", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    sent = []
    conversation = SimpleNamespace(send=sent.append, reset=lambda: None)
    client = SimpleNamespace(transport="websocket", conversation=lambda model, system=None: conversation)
    args = SimpleNamespace(model=None, system=None, json=False, no_stream=False)
    assert _cli._interactive(client, args) == 0
    err = capsys.readouterr().err
    assert "error: that line is not valid UTF-8 text (the byte 0xe9 at character 3); nothing was sent" in err
    assert sent == []
