"""The package surface: exports, typing marker, imports, the standalone server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import myshell_sync


def test_all_matches_the_public_names():
    public = {name for name in dir(myshell_sync) if not name.startswith("_")}
    submodules = {"local", "transports"}  # the local server; the transport interface
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


def test_local_server_runs_standalone():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "import runpy; import sys; sys.argv = ['x', '--port', '0']; runpy.run_module('myshell_sync.local', run_name='__main__')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        base_url = line.split()[3]
        with myshell_sync.Myshell(base_url, captcha_delay=0, timeout=5) as client:
            text = "".join(client.generate("gpt-4", [{"role": "user", "content": "standalone"}]))
        assert text == "gpt-4: standalone"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.communicate()
