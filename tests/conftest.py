"""The fixtures every test file shares (helper functions are in helpers.py).

- ``no_leaked_threads`` (autouse): every test ends with the threads it started stopped.
- ``local_server``: a ``LocalMyshellServer`` on loopback (both transports, one port).
- ``client``: a WebSocket ``Myshell`` on ``local_server``.
- ``transport``: ``"websocket"`` and ``"http"``, for the behaviour both transports share.
- ``tls``: a trustme CA and a server context for 127.0.0.1.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

if "MUTANT_UNDER_TEST" in os.environ:
    # Under mutmut (RELIABILITY.md, "Mutation testing"): the same examples every
    # run, so a score does not depend on luck; no deadline, as the mutated code
    # runs slower (a DeadlineExceeded would count as a kill); no example database.
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("mutation", derandomize=True, deadline=None, database=None)
    _hypothesis_settings.load_profile("mutation")


def pytest_report_header(config: pytest.Config) -> str:
    import myshell_sync

    return f"myshell_sync {myshell_sync.__version__} from {os.path.dirname(myshell_sync.__file__)}"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run the long soak tests")


# The core tests, `pytest -m "not extras"`, need only the test-core extra; .ci/run
# also runs them against the lowest runtime versions setup.cfg allows. What
# surrounds the client (CLI, web frameworks, notebook, gevent, proxy.py, a
# browser) is marked `extras`: by `pytestmark = pytest.mark.extras` in its module,
# `@pytest.mark.extras` on a test, or here, for a test using one of these fixtures.
EXTRAS_FIXTURES = {"auth_proxy"}  # proxy.py


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if EXTRAS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.extras)
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long soak: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every test ends with the threads it started stopped."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    leaked = []
    for thread in set(threading.enumerate()) - before:
        thread.join(max(deadline - time.monotonic(), 0))
        if thread.is_alive():
            leaked.append(thread.name)
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def local_server():
    from myshell_sync.local import LocalMyshellServer

    with LocalMyshellServer(ping_interval=5, ping_timeout=5) as server:
        yield server


@pytest.fixture
def client(local_server):
    from myshell_sync import Myshell

    with Myshell(local_server.base_url, captcha_delay=0, timeout=10) as client:
        yield client


@pytest.fixture(params=["websocket", "http"])
def transport(request) -> str:
    """Run the test once per transport."""
    return request.param


@pytest.fixture(scope="module")
def tls():
    """A trustme CA: (server SSLContext for 127.0.0.1, path of the CA's PEM file)."""
    import os
    import ssl
    import tempfile

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with tempfile.TemporaryDirectory() as tmp:
        ca_file = os.path.join(tmp, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        yield context, ca_file
