"""The ``myshell-sync`` command line (also ``python -m myshell_sync``).

This module is the user interface, so unlike the library it writes to
stdout (the reply, or JSON lines with ``--json``) and stderr (errors, the
spinner, the interactive banner). Exit codes are in ``EXIT_CODES``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any, Callable

from . import _exceptions as errors
from ._client import Myshell
from ._config import Timeout
from ._constants import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_CAPTCHA_DELAY,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_FIRST_CHUNK_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_OPENAPI_URL,
    TOKEN_ENV,
)
from ._models import DEFAULT_HTTP_MODEL, DEFAULT_MODEL, DEFAULT_OPENAPI_MODEL, http_models, models, openapi_models
from ._stream import Stream
from ._version import __version__
from ._wording import Terms

__all__ = ["main", "EXIT_CODES", "exit_code_for"]

PROG = "myshell-sync"

EXIT_OK = 0
EXIT_ERROR = 1  # any other MyshellError, or the local server failed to start
EXIT_USAGE = 2  # bad arguments (argparse's own code), unknown model, empty prompt
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: stdout was closed (e.g. `| head`)

#: Error class -> exit code, most specific first (the first match wins).
EXIT_CODES: tuple[tuple[type[errors.MyshellError], int], ...] = (
    (errors.UnsupportedModelError, EXIT_USAGE),
    (errors.AuthenticationError, 3),
    (errors.CaptchaRequiredError, 4),
    (errors.InsufficientEnergyError, 5),
    (errors.RateLimitError, 6),
    (errors.ServerError, 7),
    (errors.ProtocolError, 8),
    (errors.ConnectTimeoutError, 12),
    (errors.ConnectionLostError, 10),
    (errors.MyshellConnectionError, 9),
    (errors.MyshellTimeoutError, 11),
)

# --local: the embedded server's account, so `energy --local` shows real numbers.
LOCAL_TOKEN = "local-token"
LOCAL_ENERGY = 100
LOCAL_CHUNK_DELAY = 0.03  # seconds between chunks, so the reply visibly streams
SPINNER_FRAMES = "|/-\\"
SPINNER_INTERVAL = 0.1
MAX_RETRIES = 2  # the client's default: a failed connect is tried 3 times in all

#: How an error's advice names settings here: the flags (the library's own
#: messages name Python arguments; see _wording).
CLI_TERMS = Terms(
    token="--token",
    the_token="--token",
    api_key="--api-key",
    base_url="--base-url",
    captcha_delay="--captcha-delay",
    transport_http="--transport http",
    transport_openapi="--transport openapi",
    proxy_with_credentials="HTTPS_PROXY=http://user:pass@host:port",
    check_verify="check the server's certificate",
    name_a_bot_id="pass the bot's numeric id with -m",
    model_given=" (given with -m)",
    max_connections="retry later",
    energy_call=f"{PROG} energy",
    timeout_connect="--timeout",
    timeout_first_chunk="--timeout",
    timeout_idle="--timeout",
    timeout_total="--max-time",
)


def exit_code_for(error: BaseException) -> int:
    """The exit code for ``error`` (see ``EXIT_CODES``); 1 for anything else."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_ERROR


class UsageError(Exception):
    """Bad input found after parsing (empty prompt, conflicting options)."""


# ---------------------------------------------------------------------------
# Arguments


def _client_options(parser: argparse.ArgumentParser, api_key_flag: str = "--api-key") -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help=f"the service (default {DEFAULT_BASE_URL}; {DEFAULT_OPENAPI_URL} for openapi)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        help="start an embedded local server for this run (works offline; needs the 'local' extra)",
    )
    group.add_argument(
        "--token",
        default=None,
        help=f"account token (default: ${TOKEN_ENV}; ignored with --local); prefer "
        "the variable, a command line is visible to other users",
    )
    group.add_argument(
        api_key_flag,
        dest="api_key",
        default=None,
        metavar="KEY",
        help=f"API key of the key-based API (default: ${API_KEY_ENV}; the local "
        "server's with --local); prefer the variable",
    )
    group.add_argument(
        "--transport",
        choices=("websocket", "http", "auto", "openapi"),
        default=None,
        help="wire protocol (default openapi with an API key, else websocket)",
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help=f"seconds allowed for each connect attempt ({MAX_RETRIES + 1} at most), "
        "for the first chunk, and between chunks (default "
        f"{DEFAULT_CONNECT_TIMEOUT:g}, {DEFAULT_FIRST_CHUNK_TIMEOUT:g} and "
        f"{DEFAULT_IDLE_TIMEOUT:g})",
    )
    group.add_argument(
        "--max-time",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds the whole call may take: connect attempts, captcha delay and reply (default: no limit)",
    )
    group.add_argument(
        "--captcha-delay",
        type=_delay,
        default=None,
        metavar="S",
        help="seconds between connecting and the first request "
        f"(default {DEFAULT_CAPTCHA_DELAY:g}; 0 with --local); the real "
        "service asks for a captcha sooner, a local server does not",
    )


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, not {text!r}")
    return value


def _delay(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, not {text!r}")
    return value


def _count(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {text!r}")
    return value


def _positive_count(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}")
    return value


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 for any free one."""
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 0-65535, not {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}")
    return value


def _exit_code_help() -> str:
    lines = [
        "exit codes:",
        f"  {EXIT_OK:>3}  success",
        f"  {EXIT_ERROR:>3}  any other error",
        f"  {EXIT_USAGE:>3}  usage error (bad arguments, unknown model, empty prompt)",
    ]
    lines += [
        f"  {code:>3}  {cls.__name__}" for cls, code in sorted(EXIT_CODES, key=lambda e: e[1]) if code != EXIT_USAGE
    ]
    lines += [
        f"  {EXIT_INTERRUPTED:>3}  interrupted (Ctrl-C)",
        f"  {EXIT_BROKEN_PIPE:>3}  stdout closed early (e.g. | head)",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Chat with MyShell.ai bots from the command line.",
        epilog=_exit_code_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    chat = commands.add_parser(
        "chat",
        help="send a prompt and stream the reply (no prompt on a terminal: interactive)",
        description="Stream a bot's reply to stdout. PROMPT '-' (or no PROMPT with piped "
        "stdin) reads the prompt from stdin; no PROMPT on a terminal starts an "
        "interactive chat that keeps the history (/exit to leave, /reset to forget).",
    )
    chat.add_argument("prompt", nargs="?", help="the message; '-' reads stdin")
    chat.add_argument(
        "-m", "--model", default=None, help="model name or bot id (default: samantha; assistant over http)"
    )
    chat.add_argument("-s", "--system", default=None, help="a system message sent first")
    chat.add_argument(
        "--json", action="store_true", help="print one JSON object per line: chunk events, then end or error"
    )
    chat.add_argument("--no-stream", action="store_true", help="print the reply once it is complete")
    _client_options(chat)
    chat.set_defaults(run=_cmd_chat)

    models_cmd = commands.add_parser("models", help="list the known model names")
    models_cmd.add_argument("--json", action="store_true", help="print a JSON object")
    models_cmd.set_defaults(run=_cmd_models)

    energy = commands.add_parser("energy", help="show the account's energy (needs a token)")
    energy.add_argument("--json", action="store_true", help="print a JSON object")
    _client_options(energy)
    energy.set_defaults(run=_cmd_energy)

    serve = commands.add_parser(
        "serve-local",
        help="run the local MyShell server until Ctrl-C",
        description="Serve the local MyShell server (WebSocket, HTTP and the key-based API) "
        "on HOST:PORT until Ctrl-C or SIGTERM. It accepts any token. "
        "Also: python -m myshell_sync.local.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765; 0: any)")
    serve.add_argument(
        "--chunk-delay", type=_delay, default=0.05, metavar="S", help="seconds between chunks (default 0.05)"
    )
    serve.add_argument(
        "--captcha-window",
        type=_delay,
        default=0.0,
        metavar="S",
        help="answer need_verify_captcha to requests sooner than S seconds after connecting",
    )
    serve.add_argument(
        "--energy",
        type=_count,
        default=None,
        metavar="N",
        help="replies allowed before no_enough_energy (default unlimited)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        metavar="KEY",
        help="a key the key-based API accepts (repeatable; default local-api-key)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log connections and requests to stderr")
    serve.set_defaults(run=_cmd_serve_local)

    openai = commands.add_parser(
        "serve",
        help="serve an OpenAI-compatible API (/v1/chat/completions) until Ctrl-C",
        description="Serve OpenAI's chat completions API on HOST:PORT, answered by MyShell "
        "through one shared client, until Ctrl-C or SIGTERM (waitress, the "
        "'server' extra). --local answers from an embedded local server: try it "
        "offline with curl or the openai SDK.",
    )
    openai.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    openai.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0: any free one)")
    openai.add_argument(
        "--threads",
        type=_positive_count,
        default=32,
        metavar="N",
        help="requests served at once; a stream holds one for its whole reply (default 32)",
    )
    openai.add_argument(
        "--api-key",
        dest="server_keys",
        action="append",
        metavar="KEY",
        help="a key clients must send as 'Authorization: Bearer KEY' (repeatable; "
        "default: the comma-separated $MYSHELL_SYNC_API_KEYS; none: no check)",
    )
    openai.add_argument("-v", "--verbose", action="store_true", help="log requests to stderr")
    _client_options(openai, api_key_flag="--myshell-api-key")
    openai.set_defaults(run=_cmd_serve)
    return parser


# ---------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    _replace_unencodable(sys.stdout, "replace")
    _replace_unencodable(sys.stderr, "backslashreplace")
    if threading.current_thread() is threading.main_thread():
        # A background job inherits SIGINT as ignored; Ctrl-C must still work.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = _parser().parse_args(argv)
        return int(args.run(args))
    except KeyboardInterrupt:
        _quiet_sigint()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except UsageError as exc:
        _error_line(f"error: {exc}")
        return EXIT_USAGE
    except _StartError as exc:
        _error_line(str(exc))
        return EXIT_ERROR
    except errors.MyshellError as exc:
        _error_line(_describe(exc))
        return exit_code_for(exc)


# Error handlers under which writing to a text stream never raises.
_NON_RAISING_ERRORS = frozenset({"replace", "backslashreplace", "xmlcharrefreplace", "namereplace", "ignore"})


def _replace_unencodable(stream: IO[str] | None, handler: str) -> None:
    """Make ``stream`` write what its encoding cannot hold (a lone surrogate;
    any non-ASCII character on an ASCII stdout) with the error ``handler``
    instead of raising ``UnicodeEncodeError``. A handler that never raises is kept."""
    reconfigure = getattr(stream, "reconfigure", None)
    if getattr(stream, "errors", None) in _NON_RAISING_ERRORS or not callable(reconfigure):
        return
    with contextlib.suppress(OSError, ValueError):
        reconfigure(errors=handler)


def _quiet_sigint() -> None:
    """After Ctrl-C, a second one during shutdown must not print a traceback."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _discard_stdout() -> None:
    """The reader went away: stop the interpreter's final flush from failing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _error_line(text: str) -> None:
    """One line on stderr, prefixed with the program name."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"{PROG}: {' '.join(text.split())}\n")
        sys.stderr.flush()


def _describe(error: errors.MyshellError) -> str:
    return f"{type(error).__name__}: {error.render(CLI_TERMS)}"


# ---------------------------------------------------------------------------
# Clients


@contextlib.contextmanager
def _client(args: argparse.Namespace) -> Iterator[Myshell]:
    """A client from the options; with ``--local`` also the server, stopped after."""
    if args.local and args.base_url is not None:
        raise UsageError("--local and --base-url exclude each other")
    if args.base_url is not None and not args.base_url.strip():
        raise UsageError("--base-url is empty; leave it out to use the real service")
    if args.base_url is not None and not args.base_url.startswith(("http://", "https://")):
        raise UsageError(f"--base-url must start with http:// or https://, not {args.base_url!r}")
    with contextlib.ExitStack() as stack:
        token, api_key = args.token, args.api_key
        captcha_delay = args.captcha_delay
        base_url = args.base_url
        if args.local:
            server = _local_server(tokens={LOCAL_TOKEN}, energy=LOCAL_ENERGY, chunk_delay=LOCAL_CHUNK_DELAY)
            stack.callback(server.stop)
            base_url, token, api_key = server.base_url, LOCAL_TOKEN, min(server.api_keys)
            if captcha_delay is None:
                captcha_delay = 0.0
        options: dict[str, Any] = {
            "token": token,
            "api_key": api_key,
            "transport": args.transport,
            "max_retries": MAX_RETRIES,
        }
        if args.local and args.transport is None:
            options["transport"] = "websocket"  # --local alone: the web app's protocol, as before
        if captcha_delay is not None:
            options["captcha_delay"] = captcha_delay
        if args.timeout is not None:
            options["timeout"] = Timeout(args.timeout, total=args.max_time)
        elif args.max_time is not None:
            options["timeout"] = Timeout(total=args.max_time)
        try:
            client = Myshell(base_url, **options)
        except (TypeError, ValueError) as exc:  # from the environment (a proxy variable)
            raise UsageError(str(exc)) from None
        yield stack.enter_context(client)


def _local_server(**switches: Any) -> Any:
    """A started LocalMyshellServer (the caller stops it); ``_StartError`` if it cannot run."""
    try:
        from .local import LocalMyshellServer
    except ImportError as exc:
        raise _StartError(_import_problem(exc)) from None
    server = LocalMyshellServer(**switches)
    try:
        server.start()
    except RuntimeError as exc:
        raise _StartError(f"cannot start the local server: {exc}") from None
    return server


def _import_problem(exc: ImportError) -> str:
    """The line for a failed import of the local server: the install advice
    when its extra is missing."""
    try:
        from .local import MissingExtraError
    except ImportError:  # the package itself is broken
        return f"cannot start the local server: {exc}"
    return str(exc) if isinstance(exc, MissingExtraError) else f"cannot start the local server: {exc}"


class _StartError(Exception):
    """The embedded local server could not start (exit code 1); the text is the line to print."""


# ---------------------------------------------------------------------------
# chat


class Spinner:
    """A one-character spinner on ``stream`` until ``stop()``; draws its first
    frame at once. Use only when the stream is a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Spinner:
        self._draw(0)
        self._thread = threading.Thread(target=self._spin, name="myshell-cli-spinner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and erase the spinner; idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._write("\r \r")

    def _spin(self) -> None:
        frame = 1
        while not self._stop.wait(SPINNER_INTERVAL):
            self._draw(frame)
            frame += 1

    def _draw(self, frame: int) -> None:
        self._write("\r" + SPINNER_FRAMES[frame % len(SPINNER_FRAMES)])

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)
            self._stream.flush()


class _NoSpinner:
    def stop(self) -> None:
        pass


def _wants_spinner(args: argparse.Namespace) -> bool:
    return not args.json and _isatty(sys.stdout) and _isatty(sys.stderr)


def _isatty(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False


def _read_prompt(args: argparse.Namespace) -> str | None:
    """The prompt from the argument or stdin; None means interactive."""
    if args.prompt is not None and args.prompt != "-":
        prompt = _valid_text("the prompt", str(args.prompt))
    elif args.prompt is None and _isatty(sys.stdin):
        return None
    elif sys.stdin is None:
        raise UsageError("no prompt given and no standard input to read it from")
    else:
        prompt = _valid_text("standard input", _read_stdin()).rstrip("\r\n")
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    return prompt


_CONVERT = "convert it first, e.g. with iconv -t UTF-8"


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"standard input is not valid {exc.encoding} text (it holds the byte "
            f"0x{exc.object[exc.start]:02x}); {_CONVERT}"
        ) from None


def _valid_text(what: str, text: str) -> str:
    """``text``, unless it holds a lone surrogate: an undecodable byte of a
    command-line argument (or of stdin read with surrogateescape), which the
    client would refuse."""
    problem = _not_unicode(text)
    if problem:
        raise UsageError(f"{what} is not valid UTF-8 text ({problem}); {_CONVERT}")
    return text


def _not_unicode(text: str) -> str:
    """What keeps ``text`` from being valid Unicode, or "" if nothing does."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:  # how surrogateescape keeps an undecodable byte
            return f"the byte 0x{code - 0xDC00:02x} at character {exc.start}"
        return f"a lone surrogate U+{code:04X} at character {exc.start}"
    return ""


def _cmd_chat(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args)
    base: list[dict[str, str]] = []
    if args.system:
        base.append({"role": "system", "content": _valid_text("the system message (-s)", args.system)})
    with _client(args) as client:
        _captcha_notice(client, args)
        if prompt is None:
            return _interactive(client, args)
        messages = base + [{"role": "user", "content": prompt}]
        _reply(lambda: client.stream(args.model, messages), args, _model_name(client, args))
    return EXIT_OK


def _captcha_notice(client: Myshell, args: argparse.Namespace) -> None:
    """On a terminal, say why the first request waits (a piped stderr gets
    nothing: it is for errors, and the wait is in --help)."""
    if client.captcha_delay <= 0 or client.transport not in ("websocket", "auto") or not _isatty(sys.stderr):
        return
    text = (
        f"{PROG}: a new connection waits {client.captcha_delay:g}s before its first request "
        "(--captcha-delay; the real service asks for a captcha sooner)"
    )
    if args.base_url is not None and args.base_url.rstrip("/") != DEFAULT_BASE_URL:
        text += "; --captcha-delay 0 skips the wait against a local or test server"
    _info(text)


def _model_name(client: Myshell, args: argparse.Namespace) -> str:
    """The model the request goes to: the one given, or the transport's default."""
    if args.model:
        return str(args.model)
    return {"http": DEFAULT_HTTP_MODEL, "openapi": DEFAULT_OPENAPI_MODEL}.get(client.transport, DEFAULT_MODEL)


def _reply(open_stream: Callable[[], Stream], args: argparse.Namespace, model: str) -> str:
    """Open the stream and print the reply as ``args`` say; return its text.

    Errors propagate after being reported on stdout as well with ``--json``.
    """
    out = sys.stdout
    emit_json = _json_writer(out) if args.json else None
    spinner: Any = Spinner(sys.stderr).start() if _wants_spinner(args) else _NoSpinner()
    wrote_text = False
    try:
        with open_stream() as stream:
            for chunk in stream:
                if args.no_stream:
                    continue  # the spinner goes on until the whole reply is in
                spinner.stop()
                if emit_json is not None:
                    emit_json({"type": "chunk", "text": chunk})
                elif chunk:
                    out.write(chunk)
                    out.flush()
                    wrote_text = True
            spinner.stop()
            if emit_json is not None:
                emit_json(_end_event(stream, model))
            else:
                text = stream.text if args.no_stream else ""
                out.write(text + "\n")
                out.flush()
            return stream.text
    except errors.MyshellError as exc:
        spinner.stop()
        if emit_json is not None:
            emit_json(_error_event(exc))
        elif wrote_text:
            out.write("\n")
            out.flush()
        raise
    except KeyboardInterrupt:
        spinner.stop()
        if wrote_text:
            with contextlib.suppress(OSError, ValueError):
                out.write("\n")
                out.flush()
        raise
    finally:
        spinner.stop()


def _json_writer(out: IO[str]) -> Callable[[dict[str, Any]], None]:
    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")  # ASCII: any stdout can encode it, losing nothing
        out.flush()

    return emit


def _end_event(stream: Stream, model: str) -> dict[str, Any]:
    timings = stream.timings
    return {
        "type": "end",
        "text": stream.text,
        "req_id": stream.req_id,
        "model": model,
        "timings": {"connect": timings.connect, "first_chunk": timings.first_chunk, "total": timings.total},
    }


def _error_event(error: errors.MyshellError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": type(error).__name__,
        "message": error.render(CLI_TERMS),
        "exit_code": exit_code_for(error),
        "req_id": error.req_id,
        "partial_text": error.partial_text,
    }


def _interactive(client: Myshell, args: argparse.Namespace) -> int:
    """A chat that keeps the history (a ``Conversation``). Ctrl-C during a
    reply drops that turn; Ctrl-C at the prompt leaves with 130, ``/exit``
    or end of input with 0."""
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing for input())
    model = _model_name(client, args)
    conversation = client.conversation(args.model, system=args.system)
    _info(f"Chatting with {model}. Type /exit to leave, /reset to forget the conversation.")
    while True:
        try:
            line = input("> ")
        except EOFError:
            _info("")
            return EXIT_OK
        except KeyboardInterrupt:
            _info("")  # end the prompt's line before leaving
            raise
        except UnicodeDecodeError as exc:
            _error_line(f"error: that line is not valid {exc.encoding} text; nothing was sent")
            continue
        if _not_unicode(line):
            _error_line(f"error: that line is not valid UTF-8 text ({_not_unicode(line)}); nothing was sent")
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return EXIT_OK
        if text == "/reset":
            conversation.reset()
            _info("(conversation forgotten)")
            continue
        try:
            _reply(functools.partial(conversation.send, line), args, model)
        except KeyboardInterrupt:
            _info("(interrupted)")
        except errors.MyshellError as exc:
            _error_line(_describe(exc))


def _info(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# models, energy, serve-local


def _cmd_models(args: argparse.Namespace) -> int:
    if args.json:
        json.dump({"websocket": dict(models), "http": dict(http_models), "openapi": dict(openapi_models)}, sys.stdout)
        sys.stdout.write("\n")
        return EXIT_OK
    rows = [(name, uid, "websocket") for name, uid in models.items()]
    rows += [(name, bot_id, "http") for name, bot_id in http_models.items()]
    rows += [(name, widget_id, "openapi") for name, widget_id in openapi_models.items()]
    width = max(len(name) for name, _, _ in rows)
    for name, ident, transport in rows:
        sys.stdout.write(f"{name:<{width}}  {ident:<32}  {transport}\n")
    return EXIT_OK


def _cmd_energy(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            energy = client.energy()
    except errors.MyshellError as exc:
        if args.json:  # as chat --json: the error on stdout too
            _json_writer(sys.stdout)(_error_event(exc))
        raise
    if args.json:
        sys.stdout.write(json.dumps({"energy": energy.energy, "daily_energy": energy.daily_energy}) + "\n")
    else:
        sys.stdout.write(f"energy: {energy.energy}\ndaily energy: {energy.daily_energy}\n")
    return EXIT_OK


def _cmd_serve_local(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; both stop it cleanly with status 0."""
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("myshell_sync.local.socketio").setLevel(logging.WARNING)
        logging.getLogger("myshell_sync.local.engineio").setLevel(logging.WARNING)
    server = _local_server(
        host=args.host,
        port=args.port,
        chunk_delay=args.chunk_delay,
        captcha_window=args.captcha_window,
        energy=args.energy,
        api_keys=args.api_key,
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        keys = ", ".join(sorted(server.api_keys))
        sys.stdout.write(
            f"{PROG}: local server at {server.base_url} "
            f"(Myshell(base_url={server.base_url!r}, captcha_delay=0), or "
            f"{PROG} chat --base-url {server.base_url} --captcha-delay 0); "
            f"key-based API key: {keys}; Ctrl-C to stop\n"
        )
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    """The OpenAI-compatible server until Ctrl-C or SIGTERM (status 0)."""
    from .openai_api import _serve

    try:
        _serve.load_waitress()
    except ImportError as exc:
        raise _StartError(str(exc)) from None
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with _client(args) as client:
        return _serve.serve(
            client, host=args.host, port=args.port, threads=args.threads, api_keys=args.server_keys, announce=_announce
        )


def _announce(line: str) -> None:
    sys.stdout.write(f"{PROG}: {line}\n")
    sys.stdout.flush()
