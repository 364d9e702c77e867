"""The package surface: exports, typing marker, imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import myshell_sync


def test_all_matches_the_public_names():
    public = {name for name in dir(myshell_sync) if not name.startswith("_")}
    # the local server; the transport interface; the subpackages a test may have imported by now
    submodules = {"local", "transports", "openai_api", "integrations"}
    assert set(myshell_sync.__all__) - {"__version__"} == public - submodules


def test_public_classes_claim_the_package_as_their_module():
    for name in myshell_sync.__all__:
        obj = getattr(myshell_sync, name)
        if isinstance(obj, type):
            assert obj.__module__ == "myshell_sync", name


def test_every_error_is_a_myshell_error():
    for name in myshell_sync.__all__:
        obj = getattr(myshell_sync, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, myshell_sync.MyshellError), name


def test_py_typed_is_shipped():
    assert (Path(myshell_sync.__file__).parent / "py.typed").exists()


def test_importing_the_client_pulls_in_no_asyncio_and_no_server_stack():
    code = textwrap.dedent(
        """
        import sys
        import myshell_sync
        bad = [m for m in ("asyncio", "socketio", "engineio", "aiohttp") if m in sys.modules]
        print(",".join(bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
