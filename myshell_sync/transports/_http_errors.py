"""HTTP errors: statuses and requests/urllib3 exceptions become our typed errors.

Shared by every transport that speaks HTTP (and ``Myshell.energy()``), so a
status means the same thing everywhere.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterable
from typing import Any

import requests
import urllib3.exceptions

from .. import _exceptions as errors
from .._deadline import Limit
from .._wording import Wording

__all__ = ["status_error", "translate_error", "never_sent", "retry_after", "BODY_EXCERPT"]

# How much of an error body is read, and how much an error keeps.
_ERROR_BODY_LIMIT = 65536
BODY_EXCERPT = 2048


def status_error(
    response: requests.Response, req_id: str | None = None, secrets: Iterable[str | None] = ()
) -> errors.MyshellError:
    """The typed error for an HTTP error status.

    Every error carries ``status_code`` and ``body``, a bounded excerpt of
    the response body with ``secrets`` (the token) masked.
    """
    status = response.status_code
    if 300 <= status < 400:
        return errors.MyshellConnectionError(
            Wording(
                "HTTP {status}: the server redirected to {location!r}; "
                "redirects are not followed, so an https:// URL is never downgraded: check {s.base_url}",
                {"status": status, "location": response.headers.get("Location")},
            ),
            status_code=status,
            req_id=req_id,
        )
    body = _bounded_body(response)
    for secret in secrets:
        if secret:
            body = body.replace(secret, "***")
    reason, message = _json_reason(body)
    detail = f"HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
    info: dict[str, Any] = {"req_id": req_id, "status_code": status, "body": body[:BODY_EXCERPT]}
    if status == 407:
        return errors.MyshellConnectionError(
            Wording("HTTP 407: the proxy demands credentials; use {s.proxy_with_credentials}"), **info
        )
    if status == 401:
        return errors.AuthenticationError(
            Wording("{detail}; pass {s.token} or set MYSHELL_TOKEN", {"detail": detail}), **info
        )
    if status == 429:
        return errors.RateLimitError(
            f"{detail}; slow down and retry later",
            retry_after=retry_after(response.headers.get("Retry-After")),
            **info,
        )
    if "NEED_VERIFY_CAPTCHA" in reason:
        return errors.CaptchaRequiredError(
            Wording("{detail}; wait a while, or log in with {s.token}", {"detail": detail}), **info
        )
    if reason == "ERROR_REASON_USER_NOT_ENOUGH_ENERGY":
        return errors.InsufficientEnergyError(f"{detail}; wait for the daily refill or use another account", **info)
    if status == 403 and response.headers.get("cf-mitigated"):
        return errors.CaptchaRequiredError(
            f"HTTP 403: the server served a browser challenge (cf-mitigated: "
            f"{response.headers['cf-mitigated']}); this client cannot solve it — try "
            "again later, from another network, or with a logged-in token",
            **info,
        )
    if status >= 500:
        return errors.ServerError(f"{detail}; retry later", **info)
    return errors.BadRequestError(
        Wording(
            "{detail}; the server rejected the request: check the model, the prompt and {s.base_url}",
            {"detail": detail},
        ),
        **info,
    )


def _bounded_body(response: requests.Response) -> str:
    try:
        data = response.raw.read(_ERROR_BODY_LIMIT, decode_content=True)
    except Exception:  # the body is only used for the message
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


def _json_reason(body: str) -> tuple[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    reason = data.get("reason")
    message = data.get("message")
    return (reason if isinstance(reason, str) else "", message if isinstance(message, str) else "")


def retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP date: not worth a dependency


def never_sent(exc: BaseException) -> bool:
    """True when requests failed while connecting (the request never left)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, (requests.exceptions.ProxyError, requests.exceptions.SSLError)):
        return False
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


def translate_error(exc: BaseException, url: str, limit: Limit) -> errors.MyshellError:
    """Map a requests/urllib3 exception to ours, at this one boundary
    (``limit`` is the connect wait that was in force)."""
    if isinstance(exc, requests.ConnectTimeout):
        return limit.error(f"connecting to {url}", errors.ConnectTimeoutError)
    if isinstance(exc, requests.ReadTimeout):
        return errors.MyshellTimeoutError(f"the server sent nothing for too long on {url}; retry later")
    if isinstance(exc, requests.exceptions.ProxyError):
        return errors.MyshellConnectionError(f"the proxy refused the connection to {url}: {exc}")
    if isinstance(exc, requests.exceptions.SSLError):
        return errors.MyshellConnectionError(
            Wording("TLS failed for {url}: {exc}; {s.check_verify}", {"url": url, "exc": str(exc)})
        )
    if isinstance(exc, requests.ConnectionError) and never_sent(exc):
        return errors.MyshellConnectionError(
            Wording(
                "cannot connect to {url}: {exc}; check {s.base_url}, the network and the proxy",
                {"url": url, "exc": str(exc)},
            )
        )
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return errors.MyshellTimeoutError(f"the server sent nothing for too long on {url}; retry later")
    if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)):
        return errors.ConnectionLostError(f"the HTTP connection to {url} dropped: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return errors.ProtocolError(f"the server sent an SSE stream that is not UTF-8: {exc}")
    return errors.MyshellError(f"the HTTP reply failed: {exc!r}")
