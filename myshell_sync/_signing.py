"""Request signing and visitor ids, bit-exact with PROTOCOL.md section 4.

Two gpt4free bugs are fixed here (PROTOCOL.md section 7): the timestamp reads
the clock once, and the visitor id's random segment has no always-zero digits.
"""

from __future__ import annotations

import hashlib
import random
import time

from ._constants import SIGNATURE_SECRET, SIGNATURE_VERSION

__all__ = [
    "generate_header_timestamp",
    "generate_signature",
    "generate_timestamp",
    "generate_visitor_id",
]

# g4f hard-codes a 1920x1080 screen (PROTOCOL.md 4.1, segment 4).
_SCREEN_AREA = 1920 * 1080

_rng = random.SystemRandom()


def generate_timestamp(now_ms: int | None = None) -> str:
    """A 13-digit ms timestamp whose last digit is check digit variant A.

    The 12-digit prefix is weighted 2, 3, 2, 3, ... left to right; the check
    digit is the weighted sum mod 10. The clock is read once.
    """
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    prefix = str(int(now_ms))[:-1]
    if prefix.isdigit() and prefix.isascii():
        # The same sum, digit values taken from the ASCII codes in two C-level sums.
        codes = prefix.encode("ascii")
        even, odd = codes[0::2], codes[1::2]
        total = 2 * (sum(even) - 48 * len(even)) + 3 * (sum(odd) - 48 * len(odd))
    else:
        total = sum(int(d) * (2 if i % 2 == 0 else 3) for i, d in enumerate(prefix))
    return prefix + str(total % 10)


def generate_header_timestamp(now_ms: int | None = None) -> str:
    """The HTTP ``timestamp`` header: ms with check digit variant B.

    The prefix is ``now_ms // 10``; its digits are weighted 2, 5, 2, 5, ...
    from the last one leftwards, and the check digit (the weighted sum mod 10)
    replaces the last digit of ``now_ms``. The clock is read once.
    """
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    prefix = int(now_ms) // 10
    digits = reversed(str(prefix))
    total = sum(int(d) * (2 if i % 2 == 0 else 5) for i, d in enumerate(digits))
    return str(prefix * 10 + total % 10)


def generate_signature(text: str, timestamp: str | int | None = None) -> dict[str, str]:
    """Sign a prompt: ``{"signature", "timestamp", "version"}`` for text_chat.

    The signature is the reversed hex MD5 of
    ``version#text#timestamp#secret``. A missing timestamp is made with
    :func:`generate_timestamp`.
    """
    ts = generate_timestamp() if timestamp is None else str(timestamp)
    return {"signature": sign(text, ts), "timestamp": ts, "version": SIGNATURE_VERSION}


def sign(text: str, timestamp: str) -> str:
    """The ``signature`` of ``text`` at ``timestamp`` (see :func:`generate_signature`)."""
    data = f"{SIGNATURE_VERSION}#{text}#{timestamp}#{SIGNATURE_SECRET}"
    return hashlib.md5(data.encode("utf-8")).hexdigest()[::-1]


def generate_visitor_id(user_agent: str) -> str:
    """A Mixpanel-style visitor id ``T-R-UA-screen-T`` for this user agent.

    T is a timing sample (ms in hex followed by a loop count in hex), R is 56
    random bits, UA is the xor-hash of ``user_agent``, screen is 1920x1080.
    The reference calls T twice: its first loop ends as the ms changes, so
    the second sample is the next ms with about a whole ms of turns.
    """
    ms, within = divmod(time.time_ns(), 1_000_000)
    per_turn = _ns_per_turn()
    return "-".join(
        (
            _timing_segment(ms, (1_000_000 - within) // per_turn),
            format(_rng.getrandbits(56), "014x"),
            xor_hash(user_agent),
            format(_SCREEN_AREA, "x"),
            _timing_segment(ms + 1, 1_000_000 // per_turn),  # the reference calls the timer again
        )
    )


def xor_hash(text: str) -> str:
    """XOR of the big-endian 32-bit words formed by the text's low bytes, hex."""
    result = 0
    word = 0
    count = 0
    for char in text:
        word = (word << 8) | (ord(char) & 0xFF)
        count += 1
        if count == 4:
            result ^= word
            word = 0
            count = 0
    if count:
        result ^= word
    return format(result, "x")


def _timing_segment(ms: int, turns: int) -> str:
    """A timing sample: the ms in hex, then the loop count in hex."""
    return format(ms, "x") + format(turns, "x")


_turn_ns: int | None = None


def _ns_per_turn() -> int:
    """How long one turn of the reference's loop (read the clock until the
    ms changes) takes here, measured once per process: the loop counts are
    computed from it instead of spinning the CPU for up to 2 ms per id."""
    global _turn_ns
    if _turn_ns is None:
        turns = 256
        start = time.perf_counter_ns()
        mark = time.time_ns() // 1_000_000
        for _ in range(turns):
            if time.time_ns() // 1_000_000 == mark - 1:  # never true: the loop's work, not its exit
                break
        _turn_ns = max((time.perf_counter_ns() - start) // turns, 1)
    return _turn_ns
