"""What the integrations share, without their libraries (a core test).

``import myshell_sync`` and ``import myshell_sync.integrations`` stay as light
as before: neither imports llm, langchain_core or litellm (checked in a fresh
interpreter, since this test process may have imported them already). The
shared pieces (stop strings, the client cache, the environment) are checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from myshell_sync.integrations import PREFIXES
from myshell_sync.integrations._common import (
    ClientCache,
    StopScanner,
    client_options,
    model_names,
    stop_list,
)

HEAVY = ("llm", "langchain_core", "litellm", "openai", "pydantic")


def test_importing_the_package_and_integrations_imports_none_of_their_libraries():
    code = (
        "import json, sys\n"
        "import myshell_sync, myshell_sync.integrations\n"
        "from myshell_sync.integrations import _common\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_every_transport_has_a_prefix_and_its_model_names():
    assert PREFIXES == {"websocket": "myshell", "http": "myshell-http", "openapi": "myshell-openapi"}
    assert "gpt-4" in model_names("websocket")
    assert model_names("http") == ("assistant",)
    assert "gpt-4o-mini" in model_names("openapi")


@pytest.mark.parametrize(
    "stops, chunks, passed",
    [
        ([], ["a b", " c"], "a b c"),
        (["END"], ["one E", "N", "D two"], "one "),
        (["END"], ["one EN", "x"], "one ENx"),  # a held-back prefix that did not become a stop
        (["xy", "b"], ["a", "bc"], "a"),  # the earliest of several
        (["z"], ["no stop here"], "no stop here"),
    ],
)
def test_stop_scanner_cuts_at_the_first_stop_string(stops, chunks, passed):
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(chunk) for chunk in chunks) + scanner.flush()
    assert out == passed
    assert scanner.stopped == any(stop in "".join(chunks) for stop in stops)


def test_stop_list_takes_a_string_a_list_or_none():
    assert stop_list(None) == []
    assert stop_list("x") == ["x"]
    assert stop_list(["a", "", "b"]) == ["a", "b"]
    with pytest.raises(TypeError):
        stop_list([1])


def test_client_options_put_the_credential_where_the_transport_takes_it(monkeypatch):
    for name in ("MYSHELL_BASE_URL", "MYSHELL_OPENAPI_URL", "MYSHELL_CAPTCHA_DELAY"):
        monkeypatch.delenv(name, raising=False)
    assert client_options("openapi", credential="k") == {"transport": "openapi", "api_key": "k"}
    assert client_options("websocket", credential="t") == {"transport": "websocket", "token": "t"}
    monkeypatch.setenv("MYSHELL_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("MYSHELL_OPENAPI_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("MYSHELL_CAPTCHA_DELAY", "0.5")
    assert client_options("http")["base_url"] == "http://127.0.0.1:1"
    assert client_options("openapi") == {"transport": "openapi", "base_url": "http://127.0.0.1:2", "captcha_delay": 0.5}
    assert client_options("http", base_url="http://127.0.0.1:3")["base_url"] == "http://127.0.0.1:3"
    monkeypatch.setenv("MYSHELL_CAPTCHA_DELAY", "soon")
    with pytest.raises(ValueError, match="MYSHELL_CAPTCHA_DELAY"):
        client_options("websocket")


def test_the_client_cache_shares_one_client_per_options_and_closes_them(local_server):
    cache = ClientCache()
    try:
        first = cache.get(base_url=local_server.base_url, captcha_delay=0, headers={"x-a": "1"})
        assert cache.get(base_url=local_server.base_url, captcha_delay=0, headers={"x-a": "1"}) is first
        other = cache.get(base_url=local_server.base_url, captcha_delay=0, token="secret-token")
        assert other is not first and len(cache) == 2
        assert "secret-token" not in repr(cache)
    finally:
        cache.close()
    assert first.closed and other.closed and len(cache) == 0
    again = cache.get(base_url=local_server.base_url, captcha_delay=0, headers={"x-a": "1"})
    assert again is not first
    cache.close()
