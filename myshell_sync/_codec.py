"""Engine.IO v4 / Socket.IO v5 framing over WebSocket text frames.

Pure functions, no I/O, no clocks. Malformed input raises ``ProtocolError``
and nothing else. See PROTOCOL.md section 6 for the rules.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ._exceptions import ProtocolError

# Engine.IO packet types: the first character of every text frame.
EIO_OPEN = "0"
EIO_CLOSE = "1"
EIO_PING = "2"
EIO_PONG = "3"
EIO_MESSAGE = "4"
EIO_UPGRADE = "5"
EIO_NOOP = "6"
_EIO_TYPES = frozenset("0123456")

# Socket.IO packet types: the character after an Engine.IO "4".
SIO_CONNECT = 0
SIO_DISCONNECT = 1
SIO_EVENT = 2
SIO_ACK = 3
SIO_CONNECT_ERROR = 4
SIO_BINARY_EVENT = 5
SIO_BINARY_ACK = 6

# Limits taken from python-socketio's decoder (PROTOCOL.md 6.4).
_MAX_ATTACHMENT_DIGITS = 10
_MAX_ACK_DIGITS = 100

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_loads = json.loads
_raw_decode = json.JSONDecoder().raw_decode
# What json.loads allows around a value (str.strip() would take any Unicode space).
_JSON_SPACE = " \t\n\r"


class OpenPacket(NamedTuple):
    """The Engine.IO handshake values (intervals in seconds)."""

    sid: str
    ping_interval: float
    ping_timeout: float
    max_payload: int | None


class SioPacket(NamedTuple):
    """One decoded Socket.IO packet."""

    type: int
    namespace: str
    ack_id: int | None
    data: Any
    attachments: int = 0


def decode_open(frame: str) -> OpenPacket:
    """Decode the Engine.IO open packet ``0{...}``."""
    if not frame.startswith(EIO_OPEN):
        raise ProtocolError(f"expected the Engine.IO open packet, got {_clip(frame)}")
    try:
        info = _loads(frame[1:])
    except (ValueError, RecursionError):
        raise ProtocolError(f"open packet is not JSON: {_clip(frame)}") from None
    if not isinstance(info, dict):
        raise ProtocolError(f"open packet is not a JSON object: {_clip(frame)}")
    sid: Any = info.get("sid")
    interval: Any = info.get("pingInterval")
    timeout: Any = info.get("pingTimeout")
    max_payload: Any = info.get("maxPayload")
    if not isinstance(sid, str) or not _is_positive_number(interval) or not _is_positive_number(timeout):
        raise ProtocolError("open packet lacks sid/pingInterval/pingTimeout: " + _clip(frame))
    if max_payload is not None and not _is_positive_number(max_payload):
        raise ProtocolError(f"open packet has a bad maxPayload: {_clip(frame)}")
    return OpenPacket(sid, interval / 1000.0, timeout / 1000.0, max_payload)


def decode_sio(text: str) -> SioPacket:
    """Decode the Socket.IO part of an Engine.IO message (the text after ``4``)."""
    if not text or not "0" <= text[0] <= "6":
        raise ProtocolError(f"not a Socket.IO packet: {_clip(text)}")
    ptype = ord(text[0]) - 48
    pos = 1
    attachments = 0
    if ptype in (SIO_BINARY_EVENT, SIO_BINARY_ACK):
        dash = text.find("-", pos, pos + _MAX_ATTACHMENT_DIGITS + 1)
        if dash == -1 or not text[pos:dash].isdigit():
            raise ProtocolError(f"bad attachment count: {_clip(text)}")
        attachments = int(text[pos:dash])
        pos = dash + 1
    namespace = "/"
    if text.startswith("/", pos):
        comma = text.find(",", pos)
        end = len(text) if comma == -1 else comma
        namespace = text[pos:end].split("?", 1)[0]
        pos = end + 1
    ack_id = None
    start = pos
    while pos < len(text) and "0" <= text[pos] <= "9":
        pos += 1
    if pos > start:
        if pos - start > _MAX_ACK_DIGITS:
            raise ProtocolError(f"ack id is too long: {_clip(text)}")
        ack_id = int(text[start:pos])
    data = None
    if pos < len(text):
        try:
            data = _loads(text[pos:])
        except (ValueError, RecursionError):
            raise ProtocolError(f"packet payload is not JSON: {_clip(text)}") from None
    if ptype in (SIO_EVENT, SIO_BINARY_EVENT):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ProtocolError(f"event payload is not [name, ...]: {_clip(text)}")
    return SioPacket(ptype, namespace, ack_id, data, attachments)


def decode_event_frame(frame: str, prefix: str) -> list[Any] | None:
    """Fast path for the common frame ``<prefix>[name, payload]``.

    ``prefix`` is the Engine.IO message + Socket.IO EVENT + namespace part,
    e.g. ``42/chat,``. Returns the event array, or None when the frame has
    another shape (an ack id, another namespace...) and needs ``decode_sio``.
    """
    start = len(prefix)
    if not frame.startswith(prefix) or frame[start : start + 1] != "[":
        return None
    data: list[Any]  # the text from ``start`` begins with "[", so a value is an array
    try:
        data, end = _raw_decode(frame, start)
    except (ValueError, RecursionError):
        raise ProtocolError(f"packet payload is not JSON: {_clip(frame)}") from None
    if (end != len(frame) and frame[end:].strip(_JSON_SPACE)) or not data or data[0].__class__ is not str:
        raise ProtocolError(f"event payload is not [name, ...]: {_clip(frame)}")
    return data


def encode_connect(namespace: str, auth: Any) -> str:
    """Engine.IO message carrying a Socket.IO CONNECT with an auth payload."""
    return "40" + _ns(namespace) + _dumps(auth)


def encode_disconnect(namespace: str) -> str:
    """Engine.IO message carrying a Socket.IO DISCONNECT (leave the namespace)."""
    return "41" + _ns(namespace)


def encode_event(namespace: str, name: str, *args: Any) -> str:
    """Engine.IO message carrying a Socket.IO EVENT ``[name, *args]``."""
    return "42" + _ns(namespace) + _dumps([name, *args])


def encode_ack(namespace: str, ack_id: int, *args: Any) -> str:
    """Engine.IO message carrying a Socket.IO ACK for ``ack_id``."""
    return "43" + _ns(namespace) + str(ack_id) + _dumps(list(args))


def encode_pong(ping: str) -> str:
    """The pong answering an Engine.IO ping frame (echoes its payload)."""
    return EIO_PONG + ping[1:]


def is_eio_type(char: str) -> bool:
    return char in _EIO_TYPES


def _ns(namespace: str) -> str:
    return "" if namespace == "/" else namespace + ","


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _clip(text: str, limit: int = 120) -> str:
    """A short printable excerpt of a frame, for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
