"""Configuration values (myshell_sync/_config.py): Timeout, verify, proxies."""

from __future__ import annotations

import dataclasses
import os
import pickle
import ssl
import sys
import types

import pytest
import websocket._http

from myshell_sync import Timeout
from myshell_sync._config import (
    ProxyConfig,
    check_verify,
    environment_proxy,
    parse_proxy,
    tls_options,
)
from myshell_sync._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FIRST_CHUNK_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
)


def waits(timeout: Timeout):
    return (timeout.connect, timeout.first_chunk, timeout.idle, timeout.total)


DEFAULTS = (DEFAULT_CONNECT_TIMEOUT, DEFAULT_FIRST_CHUNK_TIMEOUT, DEFAULT_IDLE_TIMEOUT, None)

# ----------------------------------------------------------------------
# Timeout


def test_timeout_defaults():
    assert waits(Timeout()) == DEFAULTS


def test_a_positional_timeout_sets_every_wait_but_total():
    assert waits(Timeout(5)) == (5, 5, 5, None)
    assert waits(Timeout(2.5)) == (2.5, 2.5, 2.5, None)


def test_timeout_none_means_no_limit():
    assert waits(Timeout(None)) == (None, None, None, None)


def test_keywords_override_the_positional_value():
    assert waits(Timeout(5, connect=1)) == (1, 5, 5, None)
    assert waits(Timeout(5, idle=None, total=60)) == (5, 5, None, 60)
    assert waits(Timeout(None, first_chunk=3)) == (None, 3, None, None)
    assert waits(Timeout(connect=1)) == (1,) + DEFAULTS[1:]
    assert waits(Timeout(connect=1, first_chunk=2, idle=3, total=4)) == (1, 2, 3, 4)


def test_more_than_one_positional_argument_is_a_type_error():
    with pytest.raises(TypeError):
        Timeout(1, 2)  # type: ignore[misc]


@pytest.mark.parametrize("value", [5, 0.5, None])
def test_coerce_gives_what_the_constructor_gives(value):
    assert Timeout.coerce(value) == Timeout(value)


def test_coerce_passes_a_timeout_through():
    timeout = Timeout(connect=1, total=9)
    assert Timeout.coerce(timeout) is timeout


@pytest.mark.parametrize("value", ["5", True, [5]])
def test_coerce_refuses_what_is_not_a_timeout(value):
    with pytest.raises(TypeError, match=r"timeout must be a number of seconds, None \(no limit\) or a Timeout"):
        Timeout.coerce(value)


@pytest.mark.parametrize("name", ["connect", "first_chunk", "idle", "total"])
@pytest.mark.parametrize("value", ["5", True, [1]])
def test_a_wait_that_is_not_a_number_is_a_type_error(name, value):
    with pytest.raises(TypeError, match=rf"Timeout {name}= must be a number of seconds, or None for no limit"):
        Timeout(**{name: value})


@pytest.mark.parametrize("name", ["connect", "first_chunk", "idle", "total"])
@pytest.mark.parametrize("value", [0, -1, float("nan")])
def test_a_wait_that_is_not_positive_is_a_value_error(name, value):
    with pytest.raises(ValueError, match=rf"Timeout {name}= must be > 0 seconds, or None for no limit"):
        Timeout(**{name: value})


@pytest.mark.parametrize("value, error", [("5", TypeError), (False, TypeError), (0, ValueError)])
def test_a_bad_positional_timeout_names_the_positional_value(value, error):
    with pytest.raises(error, match=r"Timeout\(default\) must be .*, or None for no limit"):
        Timeout(value)
    with pytest.raises(error, match="timeout"):
        Timeout.coerce(value)


def test_timeout_is_an_immutable_hashable_value():
    timeout = Timeout(5, total=60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timeout.idle = 1  # type: ignore[misc]
    assert timeout == Timeout(connect=5, first_chunk=5, idle=5, total=60)
    assert timeout != Timeout(5)
    assert len({timeout, Timeout(connect=5, first_chunk=5, idle=5, total=60), Timeout(5)}) == 2
    assert pickle.loads(pickle.dumps(timeout)) == timeout
    assert dataclasses.replace(timeout, idle=1) == Timeout(5, idle=1, total=60)
    assert repr(timeout) == "Timeout(connect=5, first_chunk=5, idle=5, total=60)"


# ----------------------------------------------------------------------
# verify


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("not parsed here")
    return path


@pytest.mark.parametrize("value", [True, False])
def test_check_verify_keeps_a_bool(value):
    assert check_verify(value) is value


def test_check_verify_gives_a_bundle_path_as_a_string(bundle):
    assert check_verify(str(bundle)) == str(bundle)
    assert check_verify(bundle) == str(bundle)  # any os.PathLike


def test_check_verify_refuses_a_missing_bundle(tmp_path):
    with pytest.raises(ValueError, match="no such CA bundle file or directory"):
        check_verify(str(tmp_path / "missing.pem"))


def test_check_verify_keeps_an_ssl_context():
    context = ssl.create_default_context()
    assert check_verify(context) is context


@pytest.mark.parametrize("value", [None, 1, b"/etc/ssl/ca.pem", ssl.create_default_context])
def test_check_verify_says_what_it_accepts(value):
    with pytest.raises(TypeError, match=r"verify must be True, False, a CA bundle path or an ssl\.SSLContext"):
        check_verify(value)


def test_tls_options_for_each_kind_of_verify(bundle):
    assert tls_options(True) == {}  # websocket-client verifies by default
    assert tls_options(False) == {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    assert tls_options(str(bundle)) == {"ca_certs": str(bundle)}
    context = ssl.create_default_context()
    assert tls_options(context) == {"context": context}


def test_a_ca_directory_is_a_capath_for_websocket_client(tmp_path):
    # requests takes a directory too (as ca_cert_dir); cafile= would be IsADirectoryError
    assert check_verify(tmp_path) == str(tmp_path)
    assert tls_options(str(tmp_path)) == {"ca_cert_path": str(tmp_path)}


def test_websocket_client_wraps_the_socket_with_the_given_context():
    """The ``sslopt`` tls_options gives makes websocket-client use the context as is."""

    class Recording(ssl.SSLContext):
        def wrap_socket(self, sock, **kwargs):  # type: ignore[override]
            self.wrapped = (sock, kwargs["server_hostname"])
            return "wrapped"

    context = Recording(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # to see them kept
    sock = object()
    assert websocket._http._ssl_socket(sock, tls_options(context), "bots.example") == "wrapped"
    assert context.wrapped == (sock, "bots.example")
    assert (context.check_hostname, context.verify_mode) == (False, ssl.CERT_NONE)


# ----------------------------------------------------------------------
# Proxies

USAGE = r"use http://\[user:pass@\]host:port, socks5://\.\.\. or socks5h://\.\.\."
PIP = r'pip install "\.\[socks\]" in a clone'


@pytest.fixture
def socks_installed(monkeypatch):
    """Stand-ins for python_socks and PySocks, the [socks] extra."""
    for name in ("python_socks", "socks"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))


@pytest.fixture
def socks_missing(monkeypatch):
    for name in ("python_socks", "socks"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError


def test_parse_proxy_none_is_no_proxy():
    assert parse_proxy(None) is None


def test_parse_proxy_http():
    assert parse_proxy("http://Proxy.Example:3128") == ProxyConfig("http", "proxy.example", 3128)


@pytest.mark.parametrize("url, port", [("http://p", 8080), ("socks5://p", 1080), ("socks5h://p", 1080)])
def test_parse_proxy_default_ports(socks_installed, url, port):
    config = parse_proxy(url)
    assert (config.scheme, config.host, config.port, config.auth) == (url.split(":")[0], "p", port, None)


@pytest.mark.parametrize("url", ["socks5://p:1080", "socks5h://user:pw@p"])
def test_socks_without_the_extra_is_an_import_error_naming_the_pip_command(socks_missing, url):
    with pytest.raises(ImportError, match=PIP):
        parse_proxy(url)


@pytest.mark.parametrize(
    "url, scheme", [("https://p:443", "https"), ("socks4://p", "socks4"), ("ftp://p", "ftp"), ("", "")]
)
def test_parse_proxy_refuses_other_schemes(url, scheme):
    with pytest.raises(ValueError, match=rf"unsupported proxy scheme {scheme!r}: {USAGE}"):
        parse_proxy(url)


@pytest.mark.parametrize("url", ["http://p:port", "http://p:65536", "http://p:-1", "http://p:0"])
def test_parse_proxy_refuses_a_bad_port(url):
    with pytest.raises(ValueError, match=f"proxy URL has a bad port: {USAGE}"):
        parse_proxy(url)


@pytest.mark.parametrize("url", ["http://", "http://:3128", "http://user:pw@:3128"])
def test_parse_proxy_refuses_a_url_without_host(url):
    with pytest.raises(ValueError, match=f"proxy URL has no host: {USAGE}"):
        parse_proxy(url)


def test_parse_proxy_refuses_what_is_not_a_string():
    with pytest.raises(TypeError, match="proxy must be a URL string, not bytes"):
        parse_proxy(b"http://p:1")  # type: ignore[arg-type]


def test_proxy_credentials_are_unquoted_and_quoted_back():
    config = parse_proxy("http://us%40er:p%3Ass%2Fw%20rd@p:3128")
    assert config.auth == ("us@er", "p:ss/w rd")
    assert config.url == "http://us%40er:p%3Ass%2Fw%20rd@p:3128"
    assert config.websocket_options() == {
        "http_proxy_host": "p",
        "http_proxy_port": 3128,
        "http_proxy_auth": ("us@er", "p:ss/w rd"),
        "proxy_type": "http",
        "http_no_proxy": ["(none)"],
    }
    assert parse_proxy("http://user@p:1").auth == ("user", "")


def test_safe_url_and_repr_hide_the_password():
    config = parse_proxy("http://us%40er:s3cr%3At@p:3128")
    assert config.safe_url == "http://us%40er:***@p:3128"
    assert repr(config) == "ProxyConfig('http://us%40er:***@p:3128')"
    assert "s3cr" not in config.safe_url + repr(config) + str(config)
    assert parse_proxy("http://p:3128").safe_url == parse_proxy("http://p:3128").url == "http://p:3128"


# environment_proxy


@pytest.fixture
def env(monkeypatch):
    """No *_proxy variable set (either case), nor the CGI marker urllib heeds."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    return monkeypatch


def test_no_proxy_variable_means_no_proxy(env):
    assert environment_proxy("https://api.example") is None
    env.setenv("NO_PROXY", "example")
    assert environment_proxy("https://api.example") is None


def test_the_variable_of_the_url_scheme_is_used(env):
    env.setenv("HTTPS_PROXY", "http://secure:1")
    env.setenv("HTTP_PROXY", "http://plain:2")
    assert environment_proxy("https://api.example") == ProxyConfig("http", "secure", 1)
    assert environment_proxy("http://api.example") == ProxyConfig("http", "plain", 2)


def test_lowercase_variables_win(env):
    env.setenv("HTTPS_PROXY", "http://upper:1")
    env.setenv("https_proxy", "http://lower:2")
    assert environment_proxy("https://api.example") == ProxyConfig("http", "lower", 2)


def test_all_proxy_is_the_fallback(env):
    env.setenv("ALL_PROXY", "http://every:3")
    env.setenv("HTTP_PROXY", "http://plain:2")
    assert environment_proxy("https://api.example") == ProxyConfig("http", "every", 3)
    assert environment_proxy("http://api.example") == ProxyConfig("http", "plain", 2)


def test_http_proxy_is_not_used_for_https(env):
    # as curl and requests do: an https:// URL reads HTTPS_PROXY, then ALL_PROXY
    env.setenv("HTTP_PROXY", "http://plain:2")
    assert environment_proxy("https://api.example") is None


def test_an_empty_variable_is_no_proxy(env):
    env.setenv("HTTPS_PROXY", "")
    assert environment_proxy("https://api.example") is None


def test_a_variable_without_scheme_is_an_http_proxy(env):
    env.setenv("HTTPS_PROXY", "user:pw@corp-proxy:3128")
    assert environment_proxy("https://api.example") == ProxyConfig("http", "corp-proxy", 3128, ("user", "pw"))


@pytest.mark.parametrize("no_proxy", ["example", "api.example", ".example", "other.org, example", "*"])
def test_no_proxy_excludes_the_host(env, no_proxy):
    env.setenv("HTTPS_PROXY", "http://secure:1")
    env.setenv("NO_PROXY", no_proxy)
    assert environment_proxy("https://api.example") is None


def test_no_proxy_for_other_hosts_keeps_the_proxy(env):
    env.setenv("HTTPS_PROXY", "http://secure:1")
    env.setenv("no_proxy", "other.org,localhost")
    assert environment_proxy("https://api.example") == ProxyConfig("http", "secure", 1)


def test_a_socks_variable_without_the_extra_names_the_pip_command(env, socks_missing):
    env.setenv("ALL_PROXY", "socks5h://p:1080")
    with pytest.raises(ImportError, match=PIP):
        environment_proxy("https://api.example")


def test_a_bad_variable_says_what_to_use(env):
    env.setenv("HTTPS_PROXY", "ftp://p:21")
    with pytest.raises(ValueError, match=f"unsupported proxy scheme 'ftp': {USAGE}"):
        environment_proxy("https://api.example")


def test_an_ipv6_proxy_keeps_its_brackets_in_urls():
    config = parse_proxy("http://user:pw@[::1]:3128")
    assert config.host == "::1"  # what a socket connects to
    assert config.websocket_options()["http_proxy_host"] == "::1"
    assert config.url == "http://user:pw@[::1]:3128"
    assert config.safe_url == "http://user:***@[::1]:3128"
    assert parse_proxy(config.url) == config


@pytest.mark.parametrize(
    "value, error, text",
    [
        (0, ValueError, "timeout must be > 0 seconds, or None for no limit; got 0"),
        (-0.5, ValueError, "timeout must be > 0 seconds, or None for no limit; got -0.5"),
    ],
)
def test_coerce_says_timeout_for_a_number_out_of_range(value, error, text):
    # coerce is what timeout= goes through: the message names timeout=, not Timeout(default)
    with pytest.raises(error) as info:
        Timeout.coerce(value)
    assert str(info.value) == text


def test_no_proxy_variable_does_not_even_consult_urllib(env, monkeypatch):
    import urllib.request

    def fail(*args):
        raise AssertionError("urllib.request consulted without a *_proxy variable")

    monkeypatch.setattr(urllib.request, "getproxies_environment", fail)
    env.setenv("NO_PROXY", "example")
    assert environment_proxy("https://api.example") is None
    env.setenv("HTTPS_PROXY", "http://secure:1")
    with pytest.raises(AssertionError, match="consulted"):
        environment_proxy("https://api.example")


def test_a_url_without_a_host_is_matched_against_no_host_in_no_proxy(env):
    env.setenv("HTTP_PROXY", "http://plain:2")
    env.setenv("NO_PROXY", "xxxx,localhost")
    assert environment_proxy("http:///path") == ProxyConfig("http", "plain", 2)
