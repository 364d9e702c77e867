"""The OpenAI-compatible server (``create_app`` under waitress), proven with the
official clients: the ``openai`` Python package, the ``openai`` npm package
under Node, and LangChain's ``ChatOpenAI``; raw sockets for what the clients
hide (streaming timing, disconnects, status codes and headers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT

from myshell_sync import Myshell, format_prompt
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer, reply_chunks

pytestmark = pytest.mark.extras
pytest.importorskip("waitress")

from myshell_sync.openai_api import create_app  # noqa: E402
from myshell_sync.openai_api._serve import Server  # noqa: E402

HELLO = [{"role": "user", "content": "Write a poem about love"}]
KEY = "sk-local-test"
NODE_DIR = ROOT / "tests" / "node"


def expected(model: str = "assistant", messages=HELLO) -> str:
    return "".join(reply_chunks(model, format_prompt(messages)))


@contextlib.contextmanager
def serving(
    local: LocalMyshellServer, *, transport: str = "http", api_keys=None, threads: int = 8, **options
) -> Iterator[str]:
    """The app for a client of ``local``, under waitress on a free port: yields its base URL."""
    if transport == "openapi":
        options.setdefault("api_key", LOCAL_API_KEY)
    options.setdefault("timeout", 10)
    with Myshell(local.base_url, transport=transport, captcha_delay=0, **options) as client:
        server = Server(create_app(client, api_keys=api_keys), port=0, threads=threads)
        thread = threading.Thread(target=server.serve_forever, name="test-waitress")
        thread.start()
        try:
            yield server.url
        finally:
            server.stop()
            thread.join(10)
            assert not thread.is_alive()


def raw_request(url: str, method: str, path: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> socket.socket:
    host, port = url.rsplit("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", *headers]
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read ``sock`` until ``marker`` has arrived (a recv may return any part)."""
    data = b""
    while marker not in data:
        part = sock.recv(4096)
        assert part, f"the connection ended before {marker!r}: {data!r}"
        data += part
    return data


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    with sock:
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(lines[0].split()[1]), headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out += rest[:length]
        body = rest[length + 2 :]
    return out


def completion_body(**fields) -> bytes:
    return json.dumps({"model": "assistant", "messages": HELLO, **fields}).encode()


@pytest.fixture
def local():
    with LocalMyshellServer() as server:
        yield server


# ---------------------------------------------------------------------------
# The official Python client


def test_openai_python_client_non_streaming_and_streaming(local):
    openai = pytest.importorskip("openai")
    with serving(local) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as ai:
            completion = ai.chat.completions.create(model="assistant", messages=HELLO)
            assert completion.choices[0].message.content == expected()
            assert completion.choices[0].finish_reason == "stop"
            stream = ai.chat.completions.create(
                model="assistant", messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            chunks = list(stream)
            assert chunks[0].choices[0].delta.role == "assistant"
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected()
            assert chunks[-1].usage.completion_tokens > 0
            models = [model.id for model in ai.models.list()]
            assert "assistant" in models
            assert ai.models.retrieve("assistant").id == "assistant"


def test_openai_python_client_sees_its_own_error_classes():
    openai = pytest.importorskip("openai")
    with LocalMyshellServer(openapi_status=429, openapi_retry_after="7") as local:
        with serving(local, transport="openapi", api_keys=[KEY], max_retries=0) as url:
            with openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as wrong:
                with pytest.raises(openai.AuthenticationError):
                    wrong.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as ai:
                with pytest.raises(openai.NotFoundError):
                    ai.chat.completions.create(model="no-such-model", messages=HELLO)
                with pytest.raises(openai.BadRequestError):
                    ai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, n=2)
                with pytest.raises(openai.RateLimitError) as raised:
                    ai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
                assert raised.value.response.headers["retry-after"] == "7"
                with pytest.raises(openai.RateLimitError):
                    ai.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)


# ---------------------------------------------------------------------------
# The wire, read raw


def test_the_first_event_arrives_while_the_bot_is_still_writing():
    with LocalMyshellServer(chunk_delay=0.4) as local:  # 2.4 s of chunks after the first
        with serving(local) as url:
            sock = raw_request(url, "POST", "/v1/chat/completions", completion_body(stream=True))
            with sock:
                data = read_until(sock, b'"role":"assistant"')
                while b'"content":"' not in data.partition(b'"role":"assistant"')[2]:
                    data += read_until(sock, b"\n\n")
                # the reply is still being written upstream: the server streams, it does not buffer
                assert local.open_http_streams == 1 and not [r for r in local.completed if r]
                assert b"text/event-stream" in data and b"x-accel-buffering: no" in data.lower()


def test_a_client_that_goes_away_cancels_the_upstream_reply():
    with LocalMyshellServer(chunk_delay=0.1) as local:
        with serving(local) as url:
            sock = raw_request(url, "POST", "/v1/chat/completions", completion_body(stream=True))
            read_until(sock, b"data: ")
            sock.close()
            assert local.wait_for(lambda s: s.http_cancelled == 1, timeout=30)


def test_the_stream_ends_with_done(local):
    with serving(local) as url:
        status, headers, body = read_response(
            raw_request(url, "POST", "/v1/chat/completions", completion_body(stream=True))
        )
    assert status == 200
    events = [line[len("data: ") :] for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected()


def test_a_failure_after_the_stream_began_is_an_error_event_then_done():
    with LocalMyshellServer(drop_after=2) as local:
        with serving(local, max_retries=0) as url:
            status, _, body = read_response(
                raw_request(url, "POST", "/v1/chat/completions", completion_body(stream=True))
            )
    assert status == 200
    events = [line[len("data: ") :] for line in body.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "upstream_error" and "ConnectionLostError" in error["message"]


@pytest.mark.parametrize(
    "switches, timeout, status, kind",
    [
        ({"http_status": 503}, 30, 502, "upstream_error"),
        ({"reply_delay": 30}, 1, 504, "timeout"),
    ],
)
def test_upstream_failures_are_502_and_timeouts_504(switches, timeout, status, kind):
    with LocalMyshellServer(**switches) as local:
        with serving(local, max_retries=0, timeout=timeout) as url:
            got, headers, body = read_response(
                raw_request(url, "POST", "/v1/chat/completions", completion_body(stream=True))
            )
    assert got == status
    assert json.loads(body)["error"]["type"] == kind
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "body, status, param",
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps({"messages": HELLO}).encode(), 400, "model"),
        (completion_body(n=3), 400, "n"),
        (completion_body(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
    ],
)
def test_bad_bodies_are_400_in_openais_shape(local, body, status, param):
    with serving(local) as url:
        got, _, raw = read_response(raw_request(url, "POST", "/v1/chat/completions", body))
    assert got == status
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert "Traceback" not in error["message"]
    assert local.http_requests == []


def test_a_body_over_the_limit_is_413_and_not_read(local):
    with Myshell(local.base_url, transport="http", captcha_delay=0) as client:
        server = Server(create_app(client, max_body=1000), port=0)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            got, _, raw = read_response(
                raw_request(server.url, "POST", "/v1/chat/completions", completion_body(padding="x" * 5000))
            )
        finally:
            server.stop()
            thread.join(10)
    assert got == 413 and json.loads(raw)["error"]["code"] == "request_too_large"


def test_health_models_and_unknown_routes(local):
    with serving(local, api_keys=[KEY]) as url:
        assert read_response(raw_request(url, "GET", "/health"))[0] == 200  # no key needed
        auth = (f"Authorization: Bearer {KEY}",)
        status, _, body = read_response(raw_request(url, "GET", "/v1/models", headers=auth))
        assert status == 200 and json.loads(body)["object"] == "list"
        assert read_response(raw_request(url, "GET", "/v1/models/assistant", headers=auth))[0] == 200
        status, _, body = read_response(raw_request(url, "GET", "/v1/models/nope", headers=auth))
        assert status == 404 and json.loads(body)["error"]["code"] == "model_not_found"
        assert read_response(raw_request(url, "GET", "/v1/models"))[0] == 401
        assert read_response(raw_request(url, "GET", "/v2/x", headers=auth))[0] == 404
        assert read_response(raw_request(url, "GET", "/v1/chat/completions", headers=auth))[0] == 405


def test_api_keys_come_from_the_environment(local, monkeypatch):
    monkeypatch.setenv("MYSHELL_SYNC_API_KEYS", f"other, {KEY}")
    with serving(local) as url:
        ok = read_response(raw_request(url, "GET", "/v1/models", headers=(f"Authorization: Bearer {KEY}",)))
        refused = read_response(raw_request(url, "GET", "/v1/models", headers=("Authorization: Bearer nope",)))
    assert ok[0] == 200 and refused[0] == 401
    assert KEY.encode() not in refused[2]


def test_64_concurrent_streams_each_get_their_own_reply(local):
    openai = pytest.importorskip("openai")
    results: list[object] = [None] * 64
    with serving(local, threads=64, max_connections=64) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60) as ai:

            def one(index: int) -> None:
                messages = [{"role": "user", "content": f"prompt number {index}"}]
                try:
                    stream = ai.chat.completions.create(model="assistant", messages=messages, stream=True)
                    results[index] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                except Exception as exc:  # reported below
                    results[index] = exc

            threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
    for index, result in enumerate(results):
        assert result == expected(messages=[{"role": "user", "content": f"prompt number {index}"}]), result


# ---------------------------------------------------------------------------
# The official Node client, and LangChain


def node_client() -> Path:
    """The Node script; its openai package is installed on first use (.ci/run does it before)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        result = subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"npm install --prefix tests/node failed: {result.stderr[-2000:]}"
    return NODE_DIR / "openai_client.mjs"


def test_openai_node_client_against_the_server(local):
    script = node_client()
    with serving(local, api_keys=[KEY]) as url:
        result = subprocess.run(
            ["node", str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "BASE_URL": f"{url}/v1",
                "API_KEY": KEY,
                "MODEL": "assistant",
                "PROMPT": HELLO[0]["content"],
            },
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["completion"] == expected()
    assert report["streamed"] == expected()
    assert report["firstRole"] == "assistant" and report["finishReason"] == "stop"
    assert "assistant" in report["models"]
    assert report["errors"] == {"badKey": 401, "unknownModel": 404, "badRequest": 400}


def test_langchain_chat_openai_invoke_and_stream(local):
    langchain_openai = pytest.importorskip("langchain_openai")
    with serving(local, api_keys=[KEY]) as url:
        model = langchain_openai.ChatOpenAI(base_url=f"{url}/v1", api_key=KEY, model="assistant", max_retries=0)
        assert model.invoke(HELLO[0]["content"]).content == expected()
        assert "".join(chunk.content for chunk in model.stream(HELLO[0]["content"])) == expected()


# ---------------------------------------------------------------------------
# myshell-sync serve, and gunicorn workers


def start(command: list[str], env: dict, ready: bytes) -> tuple[subprocess.Popen, str]:
    """Start ``command``; return it and the first stdout/stderr line holding ``ready``."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    lines = []
    for line in iter(process.stdout.readline, b""):
        lines.append(line)
        if ready in line:
            return process, line.decode()
    process.wait(30)
    pytest.fail(f"{command[0]} did not start: {b''.join(lines).decode()}")


def stop(process: subprocess.Popen, signum: int = 15) -> int:
    process.send_signal(signum)
    try:
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode


@pytest.mark.parametrize("signum", [15, 2])
def test_serve_local_works_offline_and_stops_with_0(signum):
    openai = pytest.importorskip("openai")
    from helpers import CLI

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process, line = start([str(CLI), "serve", "--local", "--port", "0", "--api-key", KEY], env, b"/v1")
    try:
        base = line.split(" at ", 1)[1].split()[0]
        assert base.startswith("http://127.0.0.1:") and KEY not in line
        with openai.OpenAI(base_url=base, api_key=KEY, max_retries=0) as ai:
            reply = ai.chat.completions.create(model="gpt-4", messages=HELLO)
            assert reply.choices[0].message.content == expected("gpt-4")
    finally:
        code = stop(process, signum)
    assert code == 0


def test_serve_without_waitress_is_one_line(tmp_path):
    from helpers import CLI

    blocker = tmp_path / "waitress"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'waitress'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([str(CLI), "serve", "--local"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and 'pip install ".[server]"' in result.stderr


def test_gunicorn_runs_several_workers_each_with_its_own_client():
    if shutil.which("gunicorn") is None and not (Path(os.sys.executable).parent / "gunicorn").exists():
        pytest.skip("gunicorn is not installed")
    gunicorn = str(Path(os.sys.executable).parent / "gunicorn")
    with LocalMyshellServer() as local:
        env = {
            **os.environ,
            "MYSHELL_BASE_URL": local.base_url,
            "MYSHELL_TRANSPORT": "http",
            "MYSHELL_CAPTCHA_DELAY": "0",
            "MYSHELL_SYNC_API_KEYS": KEY,
        }
        process, line = start(
            [
                gunicorn,
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-b",
                "127.0.0.1:0",
                "myshell_sync.openai_api.wsgi:app",
            ],
            env,
            b"Listening at:",
        )
        try:
            url = line.split("Listening at: ", 1)[1].split()[0]
            booted = 0
            for raw in iter(process.stdout.readline, b""):
                booted += b"Booting worker" in raw
                if booted == 2:
                    break
            auth = (f"Authorization: Bearer {KEY}",)
            for _ in range(6):
                status, _, body = read_response(
                    raw_request(url, "POST", "/v1/chat/completions", completion_body(), headers=auth)
                )
                assert status == 200, body
                assert json.loads(body)["choices"][0]["message"]["content"] == expected()
        finally:
            code = stop(process)
    assert booted == 2 and code == 0


# ---------------------------------------------------------------------------
# The docs' server snippets, run as written against a live serve --local

DOC = ROOT / "docs" / "openai.md"
SERVED = "<!-- served -->"


def served_snippets() -> list[tuple[str, str]]:
    """(language, code) of each fenced block after a ``<!-- served -->`` line in docs/openai.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    snippets = []
    for index, line in enumerate(lines):
        if line.strip() == SERVED:
            fence = lines[index + 1]
            assert fence.startswith("```"), f"{DOC.name}:{index + 2}: {SERVED} must precede a fence"
            end = lines.index("```", index + 2)
            snippets.append((fence[3:].strip(), "\n".join(lines[index + 2 : end]) + "\n"))
    return snippets


def test_the_docs_server_snippets_run_as_written(tmp_path):
    from helpers import CLI

    snippets = served_snippets()
    assert sorted(language for language, _ in snippets) == ["bash", "js", "python"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process, line = start([str(CLI), "serve", "--local", "--port", "0"], env, b"/v1")
    base = line.split(" at ", 1)[1].split()[0][: -len("/v1")]
    try:
        for language, code in snippets:
            code = code.replace("http://127.0.0.1:8000", base)
            if language == "bash":
                command = ["bash", "-c", code]
            elif language == "python":
                command = [os.sys.executable, "-c", code]
            else:
                script = NODE_DIR / f"doc_snippet_{os.getpid()}.mjs"  # beside its node_modules
                node_client()
                script.write_text(code)
                command = ["node", str(script)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
            finally:
                if language == "js":
                    script.unlink()
            assert result.returncode == 0, (language, result.stderr)
            assert "gpt-4: Hello" in result.stdout, (language, result.stdout)
    finally:
        assert stop(process) == 0
