"""A Flask page that streams a MyShell bot's reply into the browser as it arrives.

    pip install flask
    python examples/flask_app.py --local          # an embedded local server (pip install ".[local]")
    python examples/flask_app.py                  # the real service (token from MYSHELL_TOKEN)

then open the URL it prints. ``GET /`` is a page with a form (``chat_page.html``);
``GET /stream?prompt=...`` is the reply as server-sent events, built with
``myshell_sync.to_sse``. When the browser goes away the WSGI server closes the
response iterable, which closes the ``client.generate(...)`` generator and so
cancels the upstream request.

In production use a threaded server, since each open stream holds a thread,
and share one client per process (it is thread-safe). From the repository's
top folder (``--chdir`` puts this folder on ``sys.path``)::

    gunicorn --chdir examples -k gthread --threads 32 "flask_app:create_app()"
    MYSHELL_LOCAL=1 gunicorn --chdir examples -k gthread --threads 32 "flask_app:create_app()"

With ``MYSHELL_LOCAL=1``, ``create_app()`` starts an embedded local server in
each worker process and talks to it (as the notebook does).

Behind nginx the ``X-Accel-Buffering: no`` header keeps the stream unbuffered.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from collections.abc import Generator
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.serving import make_server

from myshell_sync import Myshell, to_sse

PAGE = (Path(__file__).resolve().parent / "chat_page.html").read_text(encoding="utf-8")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(client: Myshell | None = None, model: str | None = None) -> Flask:
    """The app; every request shares ``client``.

    The default client is ``Myshell()`` (the real service), or, with the
    environment variable ``MYSHELL_LOCAL=1``, a client of an embedded local
    server started for this process.
    """
    shared = client if client is not None else _default_client()
    app = Flask(__name__)

    @app.get("/")
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @app.get("/stream")
    def stream() -> Response:
        prompt = request.args.get("prompt", "")
        if not prompt.strip():
            return Response("the prompt parameter is required\n", status=400, mimetype="text/plain")
        return Response(to_sse(_reply(shared, model, prompt)), mimetype="text/event-stream", headers=SSE_HEADERS)

    return app


def _default_client() -> Myshell:
    """``Myshell()``, or with ``MYSHELL_LOCAL=1`` a client of a local server;
    both are closed when the process exits."""
    if os.environ.get("MYSHELL_LOCAL") != "1":
        client = Myshell()
    else:
        from myshell_sync.local import LocalMyshellServer

        server = LocalMyshellServer(chunk_delay=0.1).start()
        atexit.register(server.stop)
        client = Myshell(server.base_url, captcha_delay=0)
    atexit.register(client.close)  # runs before server.stop (last in, first out)
    return client


def _reply(client: Myshell, model: str | None, prompt: str) -> Generator[str, None, None]:
    """The chunks; started lazily, so a bad model also arrives as an error event."""
    yield from client.generate(model, [{"role": "user", "content": prompt}])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", action="store_true", help="talk to an embedded local server")
    parser.add_argument("--port", type=int, default=5000, help="port to serve on (0: any)")
    parser.add_argument("-m", "--model", default=None, help="model name (default: samantha)")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.local:
            from myshell_sync.local import LocalMyshellServer

            server = stack.enter_context(LocalMyshellServer(chunk_delay=0.1))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0))
        else:
            client = stack.enter_context(Myshell())
        http = make_server("127.0.0.1", args.port, create_app(client, args.model), threaded=True)
        stack.callback(http.server_close)
        print(f"serving on http://127.0.0.1:{http.server_port}/ (Ctrl-C to stop)", flush=True)
        try:
            http.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
