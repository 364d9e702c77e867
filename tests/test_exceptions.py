"""The error tree (myshell_sync/_exceptions.py): pickling and attributes."""

from __future__ import annotations

import builtins
import multiprocessing
import pickle
import re
from concurrent.futures import ProcessPoolExecutor

import pytest

import myshell_sync
from myshell_sync import _exceptions
from myshell_sync._exceptions import (
    BadRequestError,
    MyshellConnectionError,
    MyshellError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    UnsupportedModelError,
)

ERRORS = [getattr(_exceptions, name) for name in _exceptions.__all__]


def _sample(cls: type) -> MyshellError:
    """An instance of ``cls`` with every attribute away from its default."""
    if cls is UnsupportedModelError:
        error = cls("gpt-9", ["gpt-4", "claude"], hint="or ask the admin")
        error.status_code, error.body = 400, "{}"
    else:
        extra = {RateLimitError: {"retry_after": 2.5}, RequestTooLargeError: {"size": 9000, "limit": 8000}}.get(cls, {})
        error = cls("boom: check base_url", status_code=418, body='{"e": 1}', **extra)
    # as the transports do once a reply has streamed
    error.req_id = "r-1"
    error.partial_text = "part"
    return error


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_survives_pickle(cls):
    error = _sample(cls)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol))
        assert type(copy) is cls
        assert str(copy) == str(error)
        assert repr(copy) == repr(error)
        assert vars(copy) == vars(error)
        assert copy.args == error.args


def _raise_unsupported_model(model: str) -> None:
    raise UnsupportedModelError(model, ["gpt-4"])


def test_an_error_raised_in_a_process_pool_worker_reaches_the_parent_typed():
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(_raise_unsupported_model, "gpt-9")
        with pytest.raises(UnsupportedModelError, match="unsupported model 'gpt-9'") as info:
            future.result(timeout=60)
    assert info.value.model == "gpt-9"


# ----------------------------------------------------------------------
# Attributes


def test_every_error_has_status_code_and_body_defaulting_to_none():
    for cls in ERRORS:
        error = (
            cls("gpt-9", [])
            if cls is UnsupportedModelError
            else (cls("x", size=1, limit=0) if cls is RequestTooLargeError else cls("x"))
        )
        assert (error.status_code, error.body) == (None, None), cls.__name__


def test_status_code_and_body_are_keyword_attributes_of_the_base():
    error = ServerError("HTTP 502; retry later", status_code=502, body="<html>bad gateway</html>", req_id="r-1")
    assert (error.status_code, error.body, error.req_id) == (502, "<html>bad gateway</html>", "r-1")
    assert "__init__" not in vars(MyshellConnectionError)  # one definition, in the base
    with pytest.raises(TypeError):
        ServerError("x", 502)  # keyword-only


def test_the_body_is_never_shown_by_str_or_repr():
    error = BadRequestError("HTTP 400: check the request", status_code=400, body="Bearer tok-123")
    assert "tok-123" not in str(error) + repr(error)


def test_bad_request_error():
    error = BadRequestError(
        "HTTP 413: check the request (model, prompt size, base_url)", status_code=413, body="too big"
    )
    assert isinstance(error, MyshellError) and not isinstance(error, ServerError)
    assert (error.status_code, error.body) == (413, "too big")
    assert str(error) == "HTTP 413: check the request (model, prompt size, base_url)"


def test_request_too_large_error():
    error = RequestTooLargeError(
        "the request is 9000 bytes, over the 8000 the server accepts; shorten the prompt", size=9000, limit=8000
    )
    assert isinstance(error, BadRequestError)
    assert (error.size, error.limit, error.status_code) == (9000, 8000, None)
    assert str(error).endswith("shorten the prompt")
    with pytest.raises(TypeError):
        RequestTooLargeError("no sizes")


def test_new_errors_are_exported():
    for cls in (BadRequestError, RequestTooLargeError):
        assert getattr(myshell_sync, cls.__name__) is cls
        assert cls.__name__ in myshell_sync.__all__ and cls.__name__ in _exceptions.__all__


def _tree():
    """(class, parent, also) for each line of the module docstring's tree."""
    stack = []  # (depth, class)
    for line in _exceptions.__doc__.splitlines():
        match = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?(\w+Error)(?: \(also (\w+)\))?$", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        cls = getattr(_exceptions, match.group(2))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        yield cls, stack[-1][1] if stack else None, match.group(3)
        stack.append((depth, cls))


def test_the_docstring_tree_is_the_class_tree():
    rows = list(_tree())
    assert rows[0] == (MyshellError, None, None)
    assert {cls for cls, _, _ in rows} == set(ERRORS)
    for cls, parent, also in rows[1:]:
        assert parent is not None and issubclass(cls, parent), cls.__name__
        if also:
            other = getattr(_exceptions, also, None) or getattr(builtins, also)
            assert issubclass(cls, other), (cls.__name__, also)
    parents = {}
    for cls, parent, _ in rows[1:]:
        parents.setdefault(cls, set()).add(parent)
    for cls in ERRORS[1:]:
        direct = {base for base in cls.__bases__ if issubclass(base, MyshellError)}
        assert parents[cls] == direct, cls.__name__
    assert (RequestTooLargeError, BadRequestError, None) in rows


# ----------------------------------------------------------------------
# Wording: settings named once, spelled by each front end


def _terms(**spellings: str):
    from dataclasses import fields

    from myshell_sync._wording import Terms

    return Terms(**{f.name: spellings.get(f.name, f"<{f.name}>") for f in fields(Terms)})


def test_an_error_renders_its_settings_in_other_terms_and_str_stays_python():
    from myshell_sync._wording import Wording

    error = _exceptions.AuthenticationError(
        Wording("HTTP 401 {body}; pass {s.token} or set MYSHELL_TOKEN", {"body": "{not a field}"}), status_code=401
    )
    assert str(error) == error.message == "HTTP 401 {not a field}; pass token= or set MYSHELL_TOKEN"
    assert error.args == (str(error),)
    assert error.render(_terms(token="--token")) == "HTTP 401 {not a field}; pass --token or set MYSHELL_TOKEN"
    assert ServerError("plain").render(_terms()) == "plain"  # no wording: the text as is
    copy = pickle.loads(pickle.dumps(error))
    assert copy.wording == error.wording and copy.render(_terms(token="-t")).endswith("pass -t or set MYSHELL_TOKEN")


def test_a_timeout_names_its_limit_and_value():
    from myshell_sync._deadline import Limit

    error = Limit(0.0, "first_chunk", 2.5).error("waiting for the first chunk")
    assert (error.limit, error.limit_seconds) == ("first_chunk", 2.5)
    assert str(error) == (
        "waiting for the first chunk ran out of Timeout.first_chunk of 2.5s; "
        "the bot may be busy: retry, or raise Timeout.first_chunk"
    )
    assert error.render(_terms(timeout_first_chunk="--wait")).endswith(
        "ran out of --wait of 2.5s; the bot may be busy: retry, or raise --wait"
    )
    later = Limit(1.0, "total", 9.0, attempt=2, attempts=3).error("connecting")
    assert str(later) == "connecting ran out of Timeout.total of 9s (attempt 2 of 3); raise Timeout.total"


# Python spellings of settings: an error message names them only as {s.<term>}.
_PYTHON_SPELLINGS = (
    "token=",
    "api_key=",
    "base_url",
    "Timeout.",
    "transport=",
    "captcha_delay",
    "Myshell(",
    "verify=",
    "proxy=",
    "max_connections",
    "http_bot_ids",
    "energy()",
)


def _message_literals():
    """(where, text) for each literal that starts an error message in the
    package: the first argument of an error class, of ``Limit.error`` or of a
    ``Wording`` (with its ``{...}`` fields removed), and the advice tables."""
    import ast
    from pathlib import Path

    from myshell_sync import _deadline, _reply

    package = Path(_exceptions.__file__).parent
    callers = set(_exceptions.__all__) | {"error", "Wording"}
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "local" or path.name in ("_wording.py", "_cli.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in callers:
                continue
            for part in ast.walk(node.args[0]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield f"{path.name}:{part.lineno}", re.sub(r"\{[^{}]*\}", "", part.value)
    for name, (_, advice) in _reply.ERROR_EVENTS.items():
        yield f"_reply.ERROR_EVENTS[{name!r}]", re.sub(r"\{[^{}]*\}", "", advice)
    for name, advice in _deadline._ADVICE.items():
        yield f"_deadline._ADVICE[{name!r}]", re.sub(r"\{[^{}]*\}", "", advice)


def test_error_messages_name_settings_only_through_their_wording():
    literals = list(_message_literals())
    assert len(literals) > 50  # the scan sees the package's messages
    offenders = [(where, text) for where, text in literals if any(s in text for s in _PYTHON_SPELLINGS)]
    assert offenders == []
