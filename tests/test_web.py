"""``to_sse`` and the web examples: Flask in a real threaded server (and in
headless Chromium, and under real gunicorn as docs/web.md runs it), Django
through its test client."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import requests
from helpers import eventually, load_example, ws_pool

from myshell_sync import (
    CaptchaRequiredError,
    ConnectionLostError,
    ConnectTimeoutError,
    Myshell,
    MyshellConnectionError,
    MyshellError,
    ServerError,
    to_sse,
)
from myshell_sync._sse import ServerSentEvent, SSEDecoder
from myshell_sync._web import GENERIC_MESSAGE, SAFE_MESSAGES
from myshell_sync.local import LocalMyshellServer, reply_chunks

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
CHROMIUM = Path("/usr/bin/chromium")
NODE = shutil.which("node")
PAGE = Path(__file__).resolve().parent.parent / "examples" / "chat_page.html"
LONG_PROMPT = " ".join(f"word{i}" for i in range(40))
FAKE_TOKEN = "sk-live-7f3a9c0e1b2d4f6a8c0e"  # token-shaped; must never reach a browser


def decode(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.feed(text.encode("utf-8"))
    decoder.flush()
    assert not decoder.pending
    return events


# ---------------------------------------------------------------------------
# to_sse


def test_one_event_per_chunk_then_end():
    chunks = ["Hello", " multi\nline\n", "", "\r\n", "caf\u00e9 \U0001f600", "data: x"]
    events = decode("".join(to_sse(iter(chunks))))
    assert [(e.event, e.data) for e in events] == [
        ("message", "Hello"),
        ("message", " multi\nline\n"),
        ("message", ""),
        ("message", "\n"),
        ("message", "caf\u00e9 \U0001f600"),
        ("message", "data: x"),
        ("end", ""),
    ]


def test_each_chunk_is_its_own_string():
    assert list(to_sse(["a", "b\nc"])) == ["data: a\n\n", "data: b\ndata: c\n\n", "event: end\ndata: \n\n"]


def test_myshell_error_becomes_an_error_event_and_ends_the_stream():
    def source() -> Iterator[str]:
        yield "partial "
        raise ServerError("the bot fell over\nbadly")

    events = decode("".join(to_sse(source())))
    assert [e.event for e in events] == ["message", "error"]
    assert events[0].data == "partial "
    assert events[1].json() == {"error": "ServerError", "message": SAFE_MESSAGES[ServerError]}


def test_the_error_event_hides_the_details_and_the_log_has_them(caplog):
    detail = f"upstream https://api.internal.example:8443/v1 via proxy squid.corp.example:3128 refused {FAKE_TOKEN}"

    def source() -> Iterator[str]:
        yield "partial "
        raise ServerError(detail, req_id="req-42")

    caplog.set_level(logging.WARNING, logger="myshell_sync")
    body = "".join(to_sse(source()))
    for secret in ("api.internal.example", "8443", "squid.corp.example", "3128", FAKE_TOKEN, "req-42"):
        assert secret not in body
    error = decode(body)[-1]
    assert error.event == "error"
    assert error.json() == {"error": "ServerError", "message": "The bot could not answer. Please try again later."}
    [record] = [r for r in caplog.records if r.name == "myshell_sync"]
    assert record.levelno == logging.WARNING
    assert "ServerError" in record.getMessage() and detail in record.getMessage()


class FlakyServerError(ServerError):
    """A subclass the table does not list."""


class HomeMadeError(MyshellError):
    """A direct MyshellError subclass the table does not list."""


@pytest.mark.parametrize(
    "error, message",
    [
        (FlakyServerError("x"), SAFE_MESSAGES[ServerError]),
        (ConnectionLostError("x"), SAFE_MESSAGES[ConnectionLostError]),
        (ConnectTimeoutError("x"), SAFE_MESSAGES[MyshellConnectionError]),  # nearest in the MRO
        (HomeMadeError("x"), GENERIC_MESSAGE),
        (MyshellError("x"), GENERIC_MESSAGE),
    ],
    ids=["subclass", "own-entry", "mro", "unlisted", "base"],
)
def test_a_class_without_its_own_message_gets_its_nearest_parents(error, message):
    def source() -> Iterator[str]:
        raise error
        yield  # a generator

    [event] = decode("".join(to_sse(source())))
    assert event.json() == {"error": type(error).__name__, "message": message}


def test_every_safe_message_is_a_plain_sentence():
    assert SAFE_MESSAGES[MyshellError] == GENERIC_MESSAGE
    for cls, message in SAFE_MESSAGES.items():
        assert issubclass(cls, MyshellError)
        assert message[:1].isupper() and message.endswith(".") and "\n" not in message


def test_other_exceptions_propagate():
    def source() -> Iterator[str]:
        yield "x"
        raise KeyError("bug")

    stream = to_sse(source())
    assert next(stream) == "data: x\n\n"
    with pytest.raises(KeyError):
        next(stream)


def test_non_str_chunks_are_refused():
    with pytest.raises(TypeError, match="str chunks"):
        list(to_sse([b"bytes"]))  # type: ignore[list-item]


class Source:
    """An iterator that records whether it was closed."""

    def __init__(self, items: list[str]) -> None:
        self.items = iter(items)
        self.closed = 0

    def __iter__(self) -> Source:
        return self

    def __next__(self) -> str:
        return next(self.items)

    def close(self) -> None:
        self.closed += 1


def test_closing_mid_stream_closes_the_source_once():
    source = Source(["a", "b", "c"])
    stream = to_sse(source)
    assert next(stream) == "data: a\n\n"
    stream.close()
    assert source.closed == 1
    with pytest.raises(StopIteration):
        next(stream)


def test_closing_before_the_start_closes_the_source():
    source = Source(["a"])
    to_sse(source).close()
    assert source.closed == 1


def test_the_end_closes_the_source_once():
    source = Source(["a"])
    stream = to_sse(source)
    list(stream)
    stream.close()
    assert source.closed == 1


def test_closing_cancels_a_real_reply():
    with LocalMyshellServer(chunk_delay=0.05) as server:
        with Myshell(server.base_url, captcha_delay=0, timeout=10, transport="http") as client:
            stream = to_sse(client.generate("4738", [{"role": "user", "content": LONG_PROMPT}]))
            assert next(stream) == "data: assistant: \n\n"
            stream.close()
            assert server.wait_for(lambda s: s.open_http_streams == 0, 10)
            assert server.http_cancelled == 1


# ---------------------------------------------------------------------------
# Flask, served by werkzeug's threaded server on loopback


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()  # joins the request threads
        thread.join(10)


@pytest.fixture
def flask_site() -> Iterator[Callable[..., tuple[str, LocalMyshellServer, Myshell]]]:
    """``start(transport=..., path=..., proxy=..., **switches)`` -> (url, server, client); all
    stopped after. ``path`` is appended to the server's base URL."""
    pytest.importorskip("flask")
    flask_app = load_example("flask_app")
    with contextlib.ExitStack() as stack:

        def start(
            transport: str = "websocket", path: str = "", proxy: str | None = None, **switches: Any
        ) -> tuple[str, LocalMyshellServer, Myshell]:
            server = stack.enter_context(LocalMyshellServer(**switches))
            client = stack.enter_context(
                Myshell(server.base_url + path, captcha_delay=0, timeout=10, transport=transport, proxy=proxy)
            )
            url = stack.enter_context(serve_wsgi(flask_app.create_app(client)))
            return url, server, client

        yield start


class EventReader:
    """Read server-sent events from a streaming ``requests`` response."""

    def __init__(self, response: requests.Response) -> None:
        self._pieces = response.iter_content(chunk_size=None)
        self._decoder = SSEDecoder()
        self._ready: list[ServerSentEvent] = []

    def next(self) -> ServerSentEvent:
        while not self._ready:
            self._ready.extend(self._decoder.feed(next(self._pieces)))
        return self._ready.pop(0)

    def rest(self) -> list[ServerSentEvent]:
        events = list(self._ready)
        for piece in self._pieces:
            events.extend(self._decoder.feed(piece))
        return events


def test_flask_page_has_the_form_and_the_script(flask_site):
    url, _, _ = flask_site()
    page = requests.get(url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert '<form id="ask">' in page.text and "EventSource" in page.text


def test_flask_streams_events_with_the_right_headers(flask_site):
    url, _, _ = flask_site()
    with requests.get(url + "/stream", params={"prompt": "hi flask"}, stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Cache-Control"] == "no-cache"
        events = EventReader(response).rest()
    assert [e.data for e in events[:-1]] == reply_chunks("samantha", "hi flask")
    assert events[-1].event == "end"


def test_flask_needs_a_prompt(flask_site):
    url, server, _ = flask_site()
    assert requests.get(url + "/stream", timeout=10).status_code == 400
    assert server.requests == []


def test_flask_first_chunk_arrives_before_the_bot_is_done(flask_site):
    url, server, _ = flask_site(chunk_delay=0.25)  # 2 s of chunks after the first
    prompt = "one two three four five six seven eight"
    with requests.get(url + "/stream", params={"prompt": prompt}, stream=True, timeout=10) as response:
        reader = EventReader(response)
        assert reader.next().data == "samantha: "
        assert server.completed == []  # the bot is still writing
        rest = reader.rest()
    assert "".join(e.data for e in rest[:-1]) == prompt
    # The server records completion after it sends the last frame: wait for it.
    assert server.wait_for(lambda s: len(s.completed) == 1, 10)


def flask_events(url: str, prompt: str = "hi") -> list[ServerSentEvent]:
    with requests.get(url + "/stream", params={"prompt": prompt}, stream=True, timeout=10) as response:
        return EventReader(response).rest()


def test_flask_error_event(flask_site):
    url, _, _ = flask_site(captcha_window=60.0)
    events = flask_events(url)
    assert [e.event for e in events] == ["error"]
    assert events[0].json() == {"error": "CaptchaRequiredError", "message": SAFE_MESSAGES[CaptchaRequiredError]}
    assert "captcha_delay" not in events[0].data  # the library's advice is for the developer


def test_flask_error_event_hides_the_base_url_and_a_token_in_it(flask_site, caplog):
    caplog.set_level(logging.WARNING, logger="myshell_sync")
    url, server, client = flask_site(path=f"/{FAKE_TOKEN}")  # /<token>/ws/ is a 404
    port = str(server.port)
    events = flask_events(url)
    assert [e.event for e in events] == ["error"]
    assert events[0].json() == {"error": "MyshellConnectionError", "message": SAFE_MESSAGES[MyshellConnectionError]}
    for secret in (FAKE_TOKEN, port, "127.0.0.1", "ws://"):
        assert secret not in events[0].data
    logged = [
        r.getMessage()
        for r in caplog.records
        if r.name == "myshell_sync" and r.levelno == logging.WARNING and "MyshellConnectionError" in r.getMessage()
    ]
    assert any(FAKE_TOKEN in text and port in text for text in logged), logged


def test_flask_error_event_hides_the_proxy(flask_site, caplog):
    with socket.socket() as sock:  # a proxy port nobody listens on
        sock.bind(("127.0.0.1", 0))
        proxy_port = str(sock.getsockname()[1])
    caplog.set_level(logging.WARNING, logger="myshell_sync")
    url, _, _ = flask_site(transport="http", proxy=f"http://localhost:{proxy_port}")
    events = flask_events(url)
    assert [e.event for e in events] == ["error"]
    assert events[0].json()["error"] == "MyshellConnectionError"
    assert proxy_port not in events[0].data and "localhost" not in events[0].data
    assert any(proxy_port in r.getMessage() for r in caplog.records if r.name == "myshell_sync")


def test_flask_closing_the_connection_cancels_the_http_upstream(flask_site):
    url, server, _ = flask_site(transport="http", chunk_delay=0.05)  # 40 words: 2 s
    response = requests.get(url + "/stream", params={"prompt": LONG_PROMPT}, stream=True, timeout=10)
    with response:
        assert EventReader(response).next().data == "assistant: "
        assert server.open_http_streams == 1
    # The browser went away: werkzeug closes the iterable, the generator closes,
    # the client drops its HTTP stream, and the local server sees it go.
    assert server.wait_for(lambda s: s.open_http_streams == 0, 10)
    assert server.http_cancelled == 1


def test_flask_closing_the_connection_cancels_the_websocket_request(flask_site):
    url, server, client = flask_site(chunk_delay=0.05)  # 40 words: 2 s

    def in_flight() -> int:
        return sum(conn.in_flight for conn in ws_pool(client).connections())

    response = requests.get(url + "/stream", params={"prompt": LONG_PROMPT}, stream=True, timeout=10)
    with response:
        assert EventReader(response).next().data == "samantha: "
        assert in_flight() == 1
    assert eventually(lambda: in_flight() == 0, 10)
    assert server.completed == []  # unregistered while the bot was still writing


# ---------------------------------------------------------------------------
# The Flask page in headless Chromium


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_flask_page_in_headless_chromium(flask_site, tmp_path):
    url, server, _ = flask_site(chunk_delay=0.05)
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url + "/?prompt=hello%20from%20chromium",
    ]
    env: dict[str, str] = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        dom, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its helpers too, if any is left
        proc.wait(10)
    text = dom.decode("utf-8", "replace")
    reply = re.search(r'<div id="reply"[^>]*>(.*?)</div>', text, re.S)
    assert reply is not None, (text[-2000:], err[-2000:])
    assert reply.group(1) == "samantha: hello from chromium"
    assert re.search(r'<p id="status"[^>]*>done</p>', text)
    assert len(server.requests) == 1  # the page closed its EventSource: no reconnect


# ---------------------------------------------------------------------------
# The page's script in Node, with a fake DOM and EventSource

PAGE_HARNESS = r"""
const elements = {};
const element = (id) => (elements[id] ??= {id, value: "", className: "", textContent: "",
                                           addEventListener() {}});
globalThis.document = {getElementById: element};
globalThis.location = {search: "?prompt=hi"};
const sources = [];
globalThis.EventSource = class {
  constructor(url) { this.url = url; this.listeners = {}; sources.push(this); }
  addEventListener(name, fn) { this.listeners[name] = fn; }
  close() { this.closed = true; }
};
eval(require("fs").readFileSync(0, "utf8"));
const [source] = sources;
source.onmessage({data: "partial"});
source.listeners.error(JSON.parse(process.argv[1]));
console.log(JSON.stringify({status: elements.status.textContent, reply: elements.reply.textContent,
                            closed: source.closed === true}));
"""


def page_after_error(event: dict[str, Any]) -> dict[str, Any]:
    """What the page shows after a chunk and then ``event`` (an ``error`` event's fields)."""
    script = re.search(r"<script>(.*?)</script>", PAGE.read_text(encoding="utf-8"), re.S)
    assert script is not None
    result = subprocess.run(
        [str(NODE), "-e", PAGE_HARNESS, json.dumps(event)],
        input=script.group(1),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_page_shows_the_safe_message_of_an_error_event():
    data = json.dumps({"error": "ServerError", "message": SAFE_MESSAGES[ServerError]})
    shown = page_after_error({"data": data})
    assert shown == {"status": "error: " + SAFE_MESSAGES[ServerError], "reply": "partial", "closed": True}


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_page_reports_a_lost_connection():
    assert page_after_error({})["status"] == "error: connection lost"  # a network error has no data


# ---------------------------------------------------------------------------
# gunicorn, as docs/web.md says to run it


WEB_DOC = Path(__file__).resolve().parent.parent / "docs" / "web.md"
DOC_BIND = "--bind 127.0.0.1:8000"


def documented_gunicorn_line() -> str:
    """The one offline gunicorn command of docs/web.md."""
    lines = [
        line.strip()
        for line in WEB_DOC.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("MYSHELL_LOCAL=1 gunicorn ")
    ]
    assert len(lines) == 1, lines
    assert DOC_BIND in lines[0]
    return lines[0]


def read_until(fd: int, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """Read ``fd`` until ``pattern`` matches what was read; its match."""
    data = ""
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search(data)
        if match:
            return match
        left = deadline - time.monotonic()
        assert left > 0, f"not in time: {pattern.pattern!r} in {data!r}"
        if select.select([fd], [], [], left)[0]:
            piece = os.read(fd, 65536)
            assert piece, f"end of output before {pattern.pattern!r}: {data!r}"
            data += piece.decode("utf-8", "replace")


def test_gunicorn_serves_the_flask_example_as_documented(tmp_path):
    """docs/web.md's ``MYSHELL_LOCAL=1 gunicorn --chdir examples ...`` line, run from the
    top folder as written, except on a port the OS picks; SIGTERM stops it with status 0."""
    pytest.importorskip("flask")
    pytest.importorskip("gunicorn")
    argv = shlex.split(documented_gunicorn_line().replace(DOC_BIND, "--bind 127.0.0.1:0"))
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("MYSHELL_") and not name.lower().endswith("_proxy")
    }
    while "=" in argv[0]:  # the VAR=value prefix
        name, value = argv.pop(0).split("=", 1)
        env[name] = value
    assert argv[0] == "gunicorn"
    root = WEB_DOC.parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env["HOME"] = str(tmp_path)  # gunicorn >= 27 puts its control socket under ~/.gunicorn
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *argv[1:]],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        listening = read_until(proc.stderr.fileno(), re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)"), 30)
        url = listening.group(1)
        # The socket listens before the worker is up: the first request waits in its backlog.
        with requests.get(url + "/stream", params={"prompt": "from gunicorn"}, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = decode(response.content.decode("utf-8"))
        assert [e.data for e in events[:-1]] == reply_chunks("samantha", "from gunicorn")
        assert events[-1].event == "end"
        assert "EventSource" in requests.get(url + "/", timeout=30).text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# ---------------------------------------------------------------------------
# Django, through its test client


@pytest.fixture
def django_site() -> Iterator[Callable[..., tuple[Any, LocalMyshellServer]]]:
    """``start(transport=..., **switches)`` -> (django test Client, server)."""
    pytest.importorskip("django")
    import django
    from django.conf import settings
    from django.test import Client, override_settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test",
            ALLOWED_HOSTS=["testserver"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            ROOT_URLCONF=None,
        )
        django.setup()
    django_view = load_example("django_view")
    with contextlib.ExitStack() as stack:

        def start(transport: str = "websocket", **switches: Any) -> tuple[Any, LocalMyshellServer]:
            server = stack.enter_context(LocalMyshellServer(**switches))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0, timeout=10, transport=transport))
            urls = ModuleType("myshell_test_urls")
            urls.urlpatterns = django_view.urlpatterns_for(client)  # type: ignore[attr-defined]
            stack.enter_context(override_settings(ROOT_URLCONF=urls, ALLOWED_HOSTS=["testserver"]))
            return Client(), server

        yield start


def test_django_streams_events(django_site):
    web, _ = django_site()
    response = web.get("/stream", {"prompt": "hi django"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["X-Accel-Buffering"] == "no"
    events = decode(b"".join(response.streaming_content).decode("utf-8"))
    assert [e.data for e in events[:-1]] == reply_chunks("samantha", "hi django")
    assert events[-1].event == "end"
    assert "EventSource" in web.get("/").content.decode()


def test_django_closing_the_response_cancels_the_upstream(django_site):
    web, server = django_site(transport="http", chunk_delay=0.05)
    response = web.get("/stream", {"prompt": LONG_PROMPT})
    content = iter(response.streaming_content)
    assert next(content) == b"data: assistant: \n\n"
    response.close()  # what a WSGI server does when the client goes away
    assert server.wait_for(lambda s: s.open_http_streams == 0, 10)
    assert server.http_cancelled == 1
