"""The signing algorithms against PROTOCOL.md section 4's test vectors: the
WebSocket request's timestamp and signature, the visitor id, and the HTTP
timestamp header."""

import re
from collections import Counter

import pytest

from myshell_sync import generate_signature, generate_timestamp, generate_visitor_id
from myshell_sync._signing import generate_header_timestamp

MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{}.0.0.0 Safari/537.36"
)
WIN_CHROME_123 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36"
)
LINUX_CHROME_107 = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    "now_ms, expected",
    [
        (1700000000123, "1700000000121"),
        (1695650000000, "1695650000000"),
        (1234567890123, "1234567890128"),
        (1711568924954, "1711568924958"),
    ],
)
def test_timestamp_check_digit_variant_a(now_ms, expected):
    assert generate_timestamp(now_ms) == expected


def test_timestamp_reads_the_clock_once(monkeypatch):
    # gpt4free read time.time() twice; a 10 ms boundary between the reads
    # gave a check digit for the wrong prefix (PROTOCOL.md section 7, bug 1).
    import myshell_sync._signing as signing

    readings = iter([1700000000129_000_000, 1700000000130_000_000])
    monkeypatch.setattr(signing.time, "time_ns", lambda: next(readings))
    assert generate_timestamp() == "1700000000121"


@pytest.mark.parametrize(
    "text, timestamp, signature",
    [
        ("hello", "1700000000121", "01cba8c6d87c13cd1734aafdfde5f8b4"),
        ("Hello, MyShell!", "1695650000000", "e91ccad86121169a1cb6a4e42f78ef9a"),
        ("", "1700000000121", "ef839d5ea9592c0620e0c15c2aa5a7e9"),
    ],
)
def test_signature_vectors(text, timestamp, signature):
    assert generate_signature(text, timestamp) == {
        "signature": signature,
        "timestamp": timestamp,
        "version": "v1.0.0",
    }


def test_signature_without_timestamp_uses_a_valid_fresh_one():
    signed = generate_signature("hello")
    ts = signed["timestamp"]
    assert len(ts) == 13 and generate_timestamp(int(ts)) == ts
    assert signed == generate_signature("hello", ts)


@pytest.mark.parametrize(
    "user_agent, segment",
    [
        ("", "0"),
        ("abc", "616263"),
        ("abcd", "61626364"),
        ("abcde", "61626301"),
        (MAC_CHROME.format(111), "1e525634"),
        (MAC_CHROME.format(118), "17525634"),
        (MAC_CHROME.format(117), "18525634"),
        (WIN_CHROME_123, "26001a51"),
        (LINUX_CHROME_107, "10462c6d"),
    ],
)
def test_visitor_id_user_agent_segment(user_agent, segment):
    parts = generate_visitor_id(user_agent).split("-")
    assert len(parts) == 5
    assert parts[2] == segment
    assert parts[3] == "1fa400"


def test_visitor_id_timing_segments_are_ms_then_loop_count():
    first, _, _, _, last = generate_visitor_id("abc").split("-")
    for segment in (first, last):
        assert re.fullmatch(r"[0-9a-f]{12,}", segment)
    # segment 5 is a second timing sample, never earlier than the first
    assert int(last[:11], 16) >= int(first[:11], 16)


def test_visitor_id_random_segment_has_no_always_zero_digits():
    # gpt4free dropped two digits that were always "00" and left the last
    # one 0 or 8 (PROTOCOL.md section 7, bug 2).
    samples = [generate_visitor_id("abc").split("-")[1] for _ in range(400)]
    assert {len(s) for s in samples} == {14}
    for position in range(14):
        digits = Counter(s[position] for s in samples)
        assert len(digits) >= 12, (position, digits)


# ----------------------------------------------------------------------
# The HTTP timestamp header: check digit variant B (PROTOCOL.md 4.3)


@pytest.mark.parametrize(
    "now_ms, expected",
    [
        (1700000000123, "1700000000128"),
        (1695650000000, "1695650000002"),
        (1234567890123, "1234567890124"),
        (1711568924954, "1711568924954"),  # the header captured in S15
    ],
)
def test_header_timestamp_check_digit_variant_b(now_ms, expected):
    assert generate_header_timestamp(now_ms) == expected


def test_header_timestamp_reads_the_clock_once(monkeypatch):
    import myshell_sync._signing as signing

    reads = iter([1711568924954 * 1_000_000, 1711568925000 * 1_000_000])
    monkeypatch.setattr(signing.time, "time_ns", lambda: next(reads))
    assert generate_header_timestamp() == "1711568924954"


def test_header_timestamp_is_its_own_fixed_point():
    for ms in (0, 9, 10, 1700000000123, 1711568924954):
        stamp = generate_header_timestamp(ms)
        assert generate_header_timestamp(int(stamp)) == stamp
        assert int(stamp) // 10 == ms // 10


# ----------------------------------------------------------------------
# The clock's ms exactly (integer division of time_ns), and the visitor id's
# segments digit by digit on a scripted clock and random source


def test_the_clock_is_read_as_whole_ms_without_float_rounding(monkeypatch):
    # 999_999 ns past a ms: a float division would round up to the next ms
    import myshell_sync._signing as signing

    monkeypatch.setattr(signing.time, "time_ns", lambda: 1_700_000_000_139_999_999)
    assert generate_timestamp() == generate_timestamp(1_700_000_000_139) != generate_timestamp(1_700_000_000_140)
    assert (
        generate_header_timestamp()
        == generate_header_timestamp(1_700_000_000_139)
        != generate_header_timestamp(1_700_000_000_140)
    )


class FixedBits:
    def __init__(self, value):
        self.value = value

    def getrandbits(self, bits):
        assert bits == 56
        return self.value


def test_visitor_id_segments_digit_by_digit(monkeypatch):
    import myshell_sync._signing as signing

    # 250 us into the ms 0x18bcfe56800, at 1 us per turn of the reference's loop: the first
    # sample counts the 750 turns left in this ms, the second a whole ms (1000) in the next.
    monkeypatch.setattr(signing.time, "time_ns", lambda: 0x18BCFE56800 * 1_000_000 + 250_000)
    monkeypatch.setattr(signing, "_turn_ns", 1000)
    monkeypatch.setattr(signing, "_rng", FixedBits(0xABCDEF012345))
    assert generate_visitor_id("abc") == "18bcfe568002ee-00abcdef012345-616263-1fa400-18bcfe568013e8"


def test_the_loop_speed_is_measured_once_and_is_positive(monkeypatch):
    import myshell_sync._signing as signing

    monkeypatch.setattr(signing, "_turn_ns", None)
    first = signing._ns_per_turn()
    assert isinstance(first, int) and first >= 1
    monkeypatch.setattr(signing.time, "perf_counter_ns", lambda: pytest.fail("measured twice"))
    assert signing._ns_per_turn() == first


def test_visitor_id_random_segment_is_fourteen_lowercase_hex_digits(monkeypatch):
    import myshell_sync._signing as signing

    monkeypatch.setattr(signing, "_rng", FixedBits(2**56 - 1))
    assert generate_visitor_id("").split("-")[1] == "ff" * 7
    monkeypatch.setattr(signing, "_rng", FixedBits(0))
    assert generate_visitor_id("").split("-")[1] == "0" * 14


def test_visitor_id_timing_segments_are_lowercase_hex():
    first, _, _, _, last = generate_visitor_id("abc").split("-")
    for segment in (first, last):
        assert re.fullmatch(r"[0-9a-f]+", segment)
