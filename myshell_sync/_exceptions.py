"""Every error myshell_sync raises, in one tree::

    MyshellError
    ├── UnsupportedModelError (also ValueError)
    ├── AuthenticationError
    ├── CaptchaRequiredError
    ├── InsufficientEnergyError
    ├── BadRequestError
    │   ├── RequestTooLargeError
    │   ├── InvalidTextError (also ValueError)
    │   └── InvalidRequestError (also ValueError)
    ├── ServerError
    ├── RateLimitError
    ├── ProtocolError
    ├── ClientClosedError
    ├── ConversationBusyError (also RuntimeError)
    ├── MyshellConnectionError (also ConnectionError)
    │   ├── ConnectionLostError
    │   └── ConnectTimeoutError (also MyshellTimeoutError)
    └── MyshellTimeoutError (also TimeoutError)
        └── ConnectTimeoutError

Errors raised while a reply is streaming carry ``partial_text`` (the text
already yielded) and ``req_id`` (the request's id). Errors from an HTTP
status carry ``status_code`` and ``body`` (a bounded excerpt of the response
body, never shown by ``str`` or ``repr``). Messages never contain the
account token. An error that tells the caller which setting to change keeps
its ``wording`` (see ``_wording``): ``str(error)`` names Python arguments, and
the command line renders the same wording with its flags. Every error survives ``pickle`` (a process pool returns
it typed, attributes and all).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._wording import PYTHON, Terms, Wording

__all__ = [
    "MyshellError",
    "UnsupportedModelError",
    "AuthenticationError",
    "CaptchaRequiredError",
    "InsufficientEnergyError",
    "BadRequestError",
    "RequestTooLargeError",
    "InvalidTextError",
    "InvalidRequestError",
    "ServerError",
    "RateLimitError",
    "ProtocolError",
    "ClientClosedError",
    "ConversationBusyError",
    "MyshellConnectionError",
    "ConnectionLostError",
    "MyshellTimeoutError",
    "ConnectTimeoutError",
]


class MyshellError(Exception):
    """Root of every error raised by myshell_sync.

    ``status_code`` is the HTTP status the error came from and ``body`` a
    bounded excerpt of that response's body (both None otherwise).
    ``message`` is the text, or a ``Wording`` that names settings (kept as
    ``wording``, rendered in Python terms as the text).
    """

    wording: Wording | None = None

    def __init__(
        self,
        message: str | Wording,
        *,
        req_id: str | None = None,
        partial_text: str = "",
        status_code: int | None = None,
        body: str | None = None,
    ) -> None:
        if isinstance(message, Wording):
            self.wording = message
            message = message.render(PYTHON)
        # One positional argument only: OSError subclasses (ConnectionError,
        # TimeoutError) would read a second one as errno/strerror.
        super().__init__(message)
        self.message = message
        self.req_id = req_id
        self.partial_text = partial_text
        self.status_code = status_code
        self.body = body

    def __str__(self) -> str:
        return self.message

    def render(self, terms: Terms) -> str:
        """The message with its settings spelled in ``terms`` (as ``str()``
        for ``PYTHON``, or for an error with no ``wording``)."""
        return self.message if self.wording is None else self.wording.render(terms)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default calls type(self)(*self.args): the subclass __init__ with
        # the message alone, a TypeError for any __init__ that takes something
        # else (UnsupportedModelError). Rebuild from the class and attributes.
        return _rebuild, (type(self), self.args), self.__dict__.copy()


def _rebuild(cls: type[MyshellError], args: tuple[Any, ...]) -> MyshellError:
    """Unpickle an error without calling its ``__init__`` (its state follows)."""
    error = cls.__new__(cls)
    error.args = args  # OSError.__new__ leaves args to __init__
    return error


class UnsupportedModelError(MyshellError, ValueError):
    """The model is neither a known name nor a 32-hex bot uid."""

    def __init__(
        self, model: object, known: Iterable[str], *, hint: str | Wording = "or pass a bot's 32-hex uid"
    ) -> None:
        if not isinstance(hint, Wording):
            hint = Wording("{hint}", {"hint": hint})
        wording = Wording(
            "unsupported model {model!r}{s.model_given}: use one of {names}, ",
            {"model": model, "names": ", ".join(sorted(known))},
        )
        super().__init__(wording.extended(hint.template, **hint.params))
        self.model = model


class AuthenticationError(MyshellError):
    """The server refused the account: bad or missing token, or login required."""


class CaptchaRequiredError(MyshellError):
    """The server asked for a captcha before it will answer."""


class InsufficientEnergyError(MyshellError):
    """The account has no energy left for this bot."""


class BadRequestError(MyshellError):
    """The server rejected the request: an HTTP 4xx with no more specific
    class (e.g. 400, 404, 413). Check the request: model, prompt size,
    base_url."""


class RequestTooLargeError(BadRequestError):
    """The request is larger than the server accepts; it was refused before
    anything was sent. ``size`` and ``limit`` are in bytes."""

    def __init__(self, message: str, *, size: int, limit: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.size = size
        self.limit = limit


class InvalidTextError(BadRequestError, ValueError):
    """A message is not valid Unicode text: it holds a lone surrogate (for
    example from undecodable bytes read with ``errors="surrogateescape"``),
    which no encoding on the wire can carry. Refused before anything was sent."""


class InvalidRequestError(BadRequestError, ValueError):
    """An argument of an OpenAI-style request (``myshell_sync.openai_api``)
    asks for what MyShell cannot do, or is malformed; ``param`` names it
    (``"n"``, ``"messages[0].content"``). Refused before anything was sent."""

    def __init__(self, message: str, *, param: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.param = param


class ServerError(MyshellError):
    """The server reported an error while handling the request."""


class RateLimitError(MyshellError):
    """HTTP 429: too many requests. ``retry_after`` is the server's hint in
    seconds (None when it gave none)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProtocolError(MyshellError):
    """The server sent something that breaks the wire protocol."""


class ClientClosedError(MyshellError):
    """The client was closed; create a new one."""

    def __init__(self, message: str = "client closed: create a new Myshell client", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class ConversationBusyError(MyshellError, RuntimeError):
    """A conversation was sent a turn while its previous reply was still open."""


class MyshellConnectionError(MyshellError, ConnectionError):
    """Could not connect to the server or finish the handshake.

    ``status_code`` is the HTTP status when the server refused a WebSocket
    upgrade or redirected (or None).
    """


class ConnectionLostError(MyshellConnectionError):
    """The connection died while a reply was streaming."""


class MyshellTimeoutError(MyshellError, TimeoutError):
    """A wait took longer than the configured ``Timeout`` allows.

    ``limit`` is the ``Timeout`` field that ran out (``"connect"``,
    ``"first_chunk"``, ``"idle"`` or ``"total"``) and ``limit_seconds`` its
    value; both None when no ``Timeout`` field is to blame (a read timeout
    of the HTTP stream's own backstop).
    """

    limit: str | None = None
    limit_seconds: float | None = None


class ConnectTimeoutError(MyshellConnectionError, MyshellTimeoutError):
    """Connecting or the handshake took longer than ``Timeout.connect``."""
