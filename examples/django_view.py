"""Django views that stream a MyShell bot's reply into the browser as it arrives.

    pip install django
    python examples/django_view.py --local        # a one-file Django site on an embedded local server
    python examples/django_view.py                # the real service (token from MYSHELL_TOKEN)

In a project, create one client per process and mount the views in urls.py::

    from myshell_sync import Myshell
    from django_view import urlpatterns_for

    client = Myshell()                  # thread-safe: every request shares it
    urlpatterns = [path("chat/", include(urlpatterns_for(client)))]

``chat/`` is the page (``chat_page.html``); ``chat/stream?prompt=...`` is the
reply as server-sent events, a ``StreamingHttpResponse`` over
``myshell_sync.to_sse``. Serve it with WSGI and threads (``gunicorn -k gthread
--threads 32 mysite.wsgi``): when the browser goes away the WSGI server
closes the response, Django closes the iterator, and the upstream request is
cancelled. (Under ASGI, Django reads a synchronous streaming iterator to the
end before sending anything, so the reply would not stream.)
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.urls import URLPattern, path

from myshell_sync import Myshell, to_sse

PAGE = (Path(__file__).resolve().parent / "chat_page.html").read_text(encoding="utf-8")

urlpatterns: list[URLPattern] = []  # filled by main() when run as a script


def urlpatterns_for(client: Myshell, model: str | None = None) -> list[URLPattern]:
    """The page at ``""`` and the event stream at ``"stream"``, both using ``client``."""

    def page(request: HttpRequest) -> HttpResponse:
        return HttpResponse(PAGE, content_type="text/html; charset=utf-8")

    def stream(request: HttpRequest) -> HttpResponse:
        prompt = request.GET.get("prompt", "")
        if not prompt.strip():
            return HttpResponseBadRequest("the prompt parameter is required\n", content_type="text/plain")
        response = StreamingHttpResponse(
            to_sse(_reply(client, model, prompt)), content_type="text/event-stream; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return response

    return [path("", page, name="chat-page"), path("stream", stream, name="chat-stream")]


def _reply(client: Myshell, model: str | None, prompt: str) -> Generator[str, None, None]:
    """The chunks; started lazily, so a bad model also arrives as an error event."""
    yield from client.generate(model, [{"role": "user", "content": prompt}])


def configure(**overrides: Any) -> None:
    """Minimal settings for a one-file site whose urlconf is this module."""
    from django.conf import settings

    options = dict(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(32),
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
    )
    options.update(overrides)
    settings.configure(**options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", action="store_true", help="talk to an embedded local server")
    parser.add_argument("--port", type=int, default=8000, help="port to serve on")
    parser.add_argument("-m", "--model", default=None, help="model name (default: samantha)")
    args = parser.parse_args(argv)

    import django
    from django.core.management import call_command

    with contextlib.ExitStack() as stack:
        if args.local:
            from myshell_sync.local import LocalMyshellServer

            server = stack.enter_context(LocalMyshellServer(chunk_delay=0.1))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0))
        else:
            client = stack.enter_context(Myshell())
        urlpatterns[:] = urlpatterns_for(client, args.model)
        configure()
        django.setup()
        call_command("runserver", f"127.0.0.1:{args.port}", use_reloader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
