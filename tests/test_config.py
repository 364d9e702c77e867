"""Configuration values (myshell_sync/_config.py): Timeout, verify, proxies."""

from __future__ import annotations

import dataclasses
import pickle
import ssl
from pathlib import Path

import pytest
import websocket._http

from myshell_sync import Timeout
from myshell_sync._config import check_verify, tls_options
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
    with pytest.raises(ValueError, match="no such CA bundle file"):
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
