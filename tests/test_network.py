"""Proxies and TLS on both transports, against real servers on loopback."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from helpers import MODEL, user

from myshell_sync import Myshell, MyshellConnectionError
from myshell_sync.local import LocalMyshellServer


def ask(client, transport, text="hello"):
    return "".join(client.generate(MODEL[transport], user(text)))


class ProxyProcess:
    """The proxy.py package's HTTP proxy, run as a real process on loopback."""

    def __init__(self, basic_auth=None):
        self._dir = tempfile.TemporaryDirectory()
        port_file = Path(self._dir.name) / "port"
        args = [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--num-workers",
            "1",
            "--num-acceptors",
            "1",
        ]
        if basic_auth:
            args += ["--basic-auth", basic_auth]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        ready = threading.Event()
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "proxy.py exited"
            assert time.monotonic() < deadline, "proxy.py did not start"
            ready.wait(0.05)  # the port file appears when it listens
        self.port = int(port_file.read_text())

    def url(self, credentials=""):
        return f"http://{credentials}127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._dir.cleanup()


@pytest.fixture(scope="module")
def auth_proxy():
    proxy = ProxyProcess(basic_auth="alice:s3cret")
    yield proxy
    proxy.stop()


def test_proxy_with_credentials_carries_both_transports(local_server, auth_proxy, transport):
    with Myshell(
        local_server.base_url,
        transport=transport,
        captcha_delay=0,
        timeout=10,
        proxy=auth_proxy.url("alice:s3cret@"),
        trust_env=False,
    ) as client:
        assert ask(client, transport, "via proxy") == f"{MODEL[transport]}: via proxy"
        assert "s3cret" not in repr(client) and "s3cret" not in repr(client.proxy)


def test_proxy_rejects_a_client_without_credentials(local_server, auth_proxy, transport):
    with Myshell(
        local_server.base_url,
        transport=transport,
        captcha_delay=0,
        timeout=10,
        max_retries=0,
        proxy=auth_proxy.url(),
        trust_env=False,
    ) as client:
        with pytest.raises(MyshellConnectionError) as info:
            ask(client, transport)
    assert "proxy" in str(info.value)
    assert local_server.requests == [] and local_server.http_requests == []


def test_environment_proxy_is_honoured_unless_trust_env_is_false(local_server, auth_proxy, transport, monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", auth_proxy.url())  # no credentials: the proxy refuses
    with Myshell(local_server.base_url, transport=transport, captcha_delay=0, timeout=10, max_retries=0) as client:
        with pytest.raises(MyshellConnectionError):
            ask(client, transport)
    with Myshell(local_server.base_url, transport=transport, captcha_delay=0, timeout=10, trust_env=False) as client:
        assert ask(client, transport, "direct")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Myshell(local_server.base_url, transport=transport, captcha_delay=0, timeout=10) as client:
        assert ask(client, transport, "bypassed")


def test_an_explicit_proxy_is_used_for_127_0_0_1_and_despite_no_proxy(local_server, auth_proxy, transport, monkeypatch):
    # websocket-client, left to itself, bypasses a proxy for hosts in NO_PROXY
    # (even with trust_env=False) and, before 1.9, for localhost/127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with Myshell(
        local_server.base_url,
        transport=transport,
        captcha_delay=0,
        timeout=10,
        max_retries=0,
        proxy=auth_proxy.url(),
        trust_env=False,
    ) as client:  # no credentials: the proxy refuses
        with pytest.raises(MyshellConnectionError, match="proxy"):
            ask(client, transport)
    assert local_server.requests == [] and local_server.http_requests == []


def test_socks_without_its_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match=r'pip install "\.\[socks\]" in a clone'):
        Myshell("http://127.0.0.1:9", proxy="socks5h://127.0.0.1:1080")


@pytest.mark.parametrize("proxy", ["ftp://h:1", "http://:8080", "http://h:notaport"])
def test_bad_proxy_urls_are_refused(proxy):
    with pytest.raises(ValueError, match="proxy"):
        Myshell("http://127.0.0.1:9", proxy=proxy)


@pytest.fixture
def tls_server(tls):
    context, _ = tls
    with LocalMyshellServer(ssl_context=context) as server:
        yield server


def test_untrusted_certificate_is_refused_by_default(tls_server, transport):
    assert tls_server.base_url.startswith("https://")
    with Myshell(
        tls_server.base_url, transport=transport, captcha_delay=0, timeout=10, max_retries=0, trust_env=False
    ) as client:
        with pytest.raises(MyshellConnectionError) as info:
            ask(client, transport)
    assert "TLS" in str(info.value) or "certificate" in str(info.value).lower()


def test_verify_with_the_ca_file_accepts_the_server(tls_server, tls, transport):
    _, ca_file = tls
    with Myshell(
        tls_server.base_url, transport=transport, captcha_delay=0, timeout=10, verify=ca_file, trust_env=False
    ) as client:
        assert client.ws_url.startswith("wss://")
        assert ask(client, transport, "secure") == f"{MODEL[transport]}: secure"


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_verify_false_accepts_any_certificate(tls_server, transport):
    with Myshell(
        tls_server.base_url, transport=transport, captcha_delay=0, timeout=10, verify=False, trust_env=False
    ) as client:
        assert ask(client, transport, "insecure")


def test_verify_path_must_exist():
    with pytest.raises(ValueError, match="CA bundle"):
        Myshell("https://127.0.0.1:9", verify="/nonexistent/ca.pem")
