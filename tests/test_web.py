"""``to_sse`` and the web examples: Flask in a real threaded server (and in
headless Chromium), Django through its test client."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import requests

from myshell_sync import Myshell, ServerError, to_sse
from myshell_sync._sse import SSEDecoder, ServerSentEvent
from myshell_sync.local import LocalMyshellServer, reply_chunks
from helpers import load_example

CHROMIUM = Path("/usr/bin/chromium")
LONG_PROMPT = " ".join(f"word{i}" for i in range(40))


def decode(text: str) -> List[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.feed(text.encode("utf-8"))
    decoder.flush()
    assert not decoder.pending
    return events


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition this process cannot be notified of; False on timeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


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
    assert [(e.event, e.data) for e in events] == [
        ("message", "partial "),
        ("error", "the bot fell over\nbadly"),
    ]


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

    def __init__(self, items: List[str]) -> None:
        self.items = iter(items)
        self.closed = 0

    def __iter__(self) -> "Source":
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
def flask_site() -> Iterator[Callable[..., Tuple[str, LocalMyshellServer, Myshell]]]:
    """``start(transport=..., **switches)`` -> (url, server, client); all stopped after."""
    pytest.importorskip("flask")
    flask_app = load_example("flask_app")
    with contextlib.ExitStack() as stack:

        def start(transport: str = "websocket", **switches: Any) -> Tuple[str, LocalMyshellServer, Myshell]:
            server = stack.enter_context(LocalMyshellServer(**switches))
            client = stack.enter_context(
                Myshell(server.base_url, captcha_delay=0, timeout=10, transport=transport))
            url = stack.enter_context(serve_wsgi(flask_app.create_app(client)))
            return url, server, client

        yield start


class EventReader:
    """Read server-sent events from a streaming ``requests`` response."""

    def __init__(self, response: requests.Response) -> None:
        self._pieces = response.iter_content(chunk_size=None)
        self._decoder = SSEDecoder()
        self._ready: List[ServerSentEvent] = []

    def next(self) -> ServerSentEvent:
        while not self._ready:
            self._ready.extend(self._decoder.feed(next(self._pieces)))
        return self._ready.pop(0)

    def rest(self) -> List[ServerSentEvent]:
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
    url, server, _ = flask_site(chunk_delay=0.1)
    prompt = "one two three four five six seven eight"
    with requests.get(url + "/stream", params={"prompt": prompt}, stream=True, timeout=10) as response:
        reader = EventReader(response)
        assert reader.next().data == "samantha: "
        assert server.completed == []  # the bot is still writing
        rest = reader.rest()
    assert "".join(e.data for e in rest[:-1]) == prompt
    assert len(server.completed) == 1


def test_flask_error_event(flask_site):
    url, _, _ = flask_site(captcha_window=60.0)
    with requests.get(url + "/stream", params={"prompt": "hi"}, stream=True, timeout=10) as response:
        events = EventReader(response).rest()
    assert [e.event for e in events] == ["error"]
    assert "captcha" in events[0].data


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
        return sum(conn.in_flight for conn in client._pool.connections())

    response = requests.get(url + "/stream", params={"prompt": LONG_PROMPT}, stream=True, timeout=10)
    with response:
        assert EventReader(response).next().data == "samantha: "
        assert in_flight() == 1
    assert wait_until(lambda: in_flight() == 0)
    assert server.completed == []  # unregistered while the bot was still writing


# ---------------------------------------------------------------------------
# The Flask page in headless Chromium


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_flask_page_in_headless_chromium(flask_site, tmp_path):
    url, server, _ = flask_site(chunk_delay=0.05)
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-proxy-server", "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
        url + "/?prompt=hello%20from%20chromium",
    ]
    env: Dict[str, str] = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
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
# Django, through its test client


@pytest.fixture
def django_site() -> Iterator[Callable[..., Tuple[Any, LocalMyshellServer]]]:
    """``start(transport=..., **switches)`` -> (django test Client, server)."""
    pytest.importorskip("django")
    import django
    from django.conf import settings
    from django.test import Client, override_settings

    if not settings.configured:
        settings.configure(DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["testserver"],
                           INSTALLED_APPS=[], MIDDLEWARE=[], DATABASES={}, ROOT_URLCONF=None)
        django.setup()
    django_view = load_example("django_view")
    with contextlib.ExitStack() as stack:

        def start(transport: str = "websocket", **switches: Any) -> Tuple[Any, LocalMyshellServer]:
            server = stack.enter_context(LocalMyshellServer(**switches))
            client = stack.enter_context(
                Myshell(server.base_url, captcha_delay=0, timeout=10, transport=transport))
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
