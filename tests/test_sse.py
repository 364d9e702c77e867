"""The SSE codec (myshell_sync/_sse.py).

Every sample stream is decoded whole, split in two at every byte offset, and
one byte at a time; all three must give the same events.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from myshell_sync._exceptions import ProtocolError
from myshell_sync._sse import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEDecoder, encode_sse

PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"


def _envelope(**fields):
    data = {
        "content": "",
        "voiceBytes": "",
        "voiceBytesIndex": 0,
        "errorReason": "ERROR_REASON_UNSPECIFIED",
        "status": None,
        "voiceFilePath": "",
        "message": None,
        "audioFileDurationSeconds": 0,
        "userEnergyInfo": None,
        "imageGenMessageResponse": None,
    }
    data.update(fields)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _capture():
    """The shape of the S15 capture (PROTOCOL.md 2.2): a Spanish reply from bot 4738."""
    user = {
        "id": "3521",
        "uid": "9f1c",
        "type": "TEXT",
        "botId": "4738",
        "text": "¿Qué tal? Escribe un poema",
        "status": "DONE",
    }
    reply = {
        "id": "3522",
        "uid": "a07e",
        "type": "REPLY",
        "botId": "4738",
        "text": "",
        "status": "PROCESSING",
        "replyId": "3521",
        "replyUid": "9f1c",
    }
    steps = [
        ("USER_SENT_MESSAGE_CREATED", _envelope(message=user)),
        ("USER_SENT_MESSAGE_REPLYING", _envelope(message=reply)),
        ("TEXT", _envelope(content="¡Claro")),
        ("TEXT", _envelope(content="! Aquí ")),
        ("TEXT", _envelope(content="está: «el mar»")),
        ("TEXT_STREAM_PUSH_FINISHED", _envelope(content="")),
        (
            "USER_SENT_MESSAGE_REPLIED",
            _envelope(message=dict(reply, text="¡Claro! Aquí está: «el mar»", status="DONE")),
        ),
    ]
    ids = [f"0d3c6a8e-5b7f-4b0e-9a51-6f2c1e9d40{n:02d}" for n in range(len(steps))]
    body = "".join(f"id: {i}\nevent: {PREFIX}{name}\ndata: {data}\n\n" for i, (name, data) in zip(ids, steps))
    events = [ServerSentEvent(PREFIX + name, data, i) for i, (name, data) in zip(ids, steps)]
    return body.encode(), events


SAMPLES = {
    "myshell capture": _capture(),
    "cjk and emoji": (
        "data: 你好，世界\n\nevent: emoji\ndata: 🎉👩‍💻 ok\n\n".encode(),
        [ServerSentEvent("message", "你好，世界"), ServerSentEvent("emoji", "🎉👩‍💻 ok")],
    ),
    "multi-line data": (
        b"data: one\ndata:two\ndata:  three\ndata\ndata: \n\n",
        [ServerSentEvent("message", "one\ntwo\n three\n\n")],
    ),
    "comments and unknown fields": (
        b": keep-alive\n:\nfoo: bar\ndata: x\n: inside\nDATA: no\n\n: tail\n",
        [ServerSentEvent("message", "x")],
    ),
    "ids persist; NUL id ignored": (
        b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x00\ndata: c\n\nid\ndata: d\n\nid: 3\n\ndata: e\n\n",
        [
            ServerSentEvent("message", "a", "1"),
            ServerSentEvent("message", "b", "1"),
            ServerSentEvent("message", "c", "1"),
            ServerSentEvent("message", "d", ""),
            ServerSentEvent("message", "e", "3"),
        ],
    ),
    "retry": (
        b"retry: 1500\ndata: a\n\nretry: 15x\ndata: b\n\nretry:\nretry: \xd9\xa1\ndata: c\n\n",
        [
            ServerSentEvent("message", "a", None, 1500),
            ServerSentEvent("message", "b", None, 1500),
            ServerSentEvent("message", "c", None, 1500),
        ],
    ),
    "crlf line ends": (
        b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: 3\r\n\r\n",
        [ServerSentEvent("a", "1\n2"), ServerSentEvent("message", "3")],
    ),
    "bare cr line ends": (
        b"event: a\rdata: 1\r\rdata: 2\r\r",
        [ServerSentEvent("a", "1"), ServerSentEvent("message", "2")],
    ),
    "mixed line ends": (
        b"data: a\r\n\rdata: b\n\r\ndata: c\r\r\n\n",
        [ServerSentEvent("message", "a"), ServerSentEvent("message", "b"), ServerSentEvent("message", "c")],
    ),
    "bom": (
        # only a leading BOM is dropped: later, "\ufeffdata" is an unknown field
        b"\xef\xbb\xbfdata: first\n\n\xef\xbb\xbfdata: ignored\n\ndata: x\n\n",
        [ServerSentEvent("message", "first"), ServerSentEvent("message", "x")],
    ),
    "events without data are not dispatched": (
        b"event: empty\n\nid: 7\n\n\n\ndata\n\nevent: e\ndata:\n\n",
        [ServerSentEvent("message", "", "7"), ServerSentEvent("e", "", "7")],
    ),
    "field without colon and colon in value": (
        b"data\ndata:a:b\nevent:x: y\n\n",
        [ServerSentEvent("x: y", "\na:b")],
    ),
    # The stream is decoded as UTF-8 with replacement (WHATWG 9.2.6): each
    # maximal invalid subpart becomes one U+FFFD, as bytes.decode(errors="replace").
    "invalid utf-8 in data, comment, event and id": (
        b"data:a\xffb\n\n: bad \xfe comment\ndata: \xed\xa0\x80|\xf0\x9f\x8e\n\n"
        b"id: \xc0\xaf\nevent: \xe4\xbd\r\ndata: \xf4\x90\x80\x80\r\n\n",
        [
            ServerSentEvent("message", "a\ufffdb"),
            ServerSentEvent("message", "\ufffd\ufffd\ufffd|\ufffd"),
            ServerSentEvent("\ufffd", "\ufffd" * 4, "\ufffd\ufffd"),
        ],
    ),
    "a cut bom is no bom": (
        b"\xef\xbbdata: unknown field\n\ndata: x\n\n",
        [ServerSentEvent("message", "x")],
    ),
}


def decode(chunks, max_event_size=DEFAULT_MAX_EVENT_SIZE):
    decoder = SSEDecoder(max_event_size)
    events = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events, decoder


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_decodes_the_same_however_it_is_split(name):
    body, expected = SAMPLES[name]
    whole, decoder = decode([body])
    assert whole == expected
    assert not decoder.pending
    for cut in range(len(body) + 1):
        assert decode([body[:cut], body[cut:]])[0] == expected, f"split at byte {cut}"
    assert decode([body[i : i + 1] for i in range(len(body))])[0] == expected


def test_bom_split_across_chunks_is_dropped():
    assert decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"])[0] == [ServerSentEvent("message", "x")]


def test_cr_then_lf_in_the_next_chunk_is_one_line_end():
    decoder = SSEDecoder()
    # were the LF a second line end, the event would be dispatched with "a" only
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("message", "a\nb")]


def test_an_event_is_returned_by_the_feed_that_completes_it():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n") == []
    assert decoder.pending
    assert decoder.feed(b"\n") == [ServerSentEvent("message", "x")]
    assert not decoder.pending


def test_last_event_id_and_retry_are_kept_by_the_decoder():
    decoder = SSEDecoder()
    decoder.feed(b"id: 5\nretry: 300\n\n")
    assert (decoder.last_event_id, decoder.retry) == ("5", 300)
    # an id in an event the stream never finished is not published
    decoder.feed(b"id: 6\ndata: lost\n")
    decoder.flush()
    assert decoder.last_event_id == "5"
    # a new stream (a reconnection) keeps both
    assert decoder.feed(b"data: again\n\n") == [ServerSentEvent("message", "again", "5", 300)]


@pytest.mark.parametrize(
    "tail",
    [b"data: x", b"data: x\n", b"event: e\n", b"id: 1\n", b"data: x\r", b"\xe4\xbd"],
    ids=["unfinished line", "no blank line", "event only", "id only", "cr", "utf-8"],
)
def test_a_truncated_stream_is_reported_as_pending(tail):
    decoder = SSEDecoder()
    assert decoder.feed(b"data: whole\n\n") == [ServerSentEvent("message", "whole")]
    decoder.feed(tail)
    assert decoder.pending
    assert decoder.flush() == []
    assert decoder.pending, "flush() must report that it discarded an event"
    decoder.feed(b"")
    assert not decoder.pending


@pytest.mark.parametrize("tail", [b"", b": comment\n", b"data: x\n\n", b"data: x\r\r"])
def test_a_complete_stream_is_not_pending(tail):
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n" + tail)
    decoder.flush()
    assert not decoder.pending


def test_a_character_cut_by_the_end_of_the_stream_is_replaced_not_an_error():
    decoder = SSEDecoder()
    assert decoder.feed("data: 你好\n\ndata: ".encode() + "好".encode()[:2]) == [ServerSentEvent("message", "你好")]
    assert decoder.flush() == []  # the unfinished event ("\ufffd") is discarded
    assert decoder.pending
    # the decoder reads the next stream from a clean state
    assert decoder.feed("好\n\n".encode()[2:]) == []  # a lone continuation byte: "\ufffd\n\n"
    assert decoder.feed("data: 好\n\n".encode()) == [ServerSentEvent("message", "好")]


@pytest.mark.parametrize(
    "body, data",
    [
        (b"data: a\xffb\n\n", "a\ufffdb"),
        (b"data: \xed\xa0\x80\n\n", "\ufffd" * 3),
        (b"data: \xc0\xaf\n\n", "\ufffd" * 2),
        (b"data: \xf0\x9f\x8e\n\n", "\ufffd"),
        (b"data: \xe4\ndata: \xbd\n\n", "\ufffd\n\ufffd"),
    ],
    ids=["lone byte", "surrogate", "overlong", "cut 4-byte", "line end inside a character"],
)
def test_invalid_utf8_decodes_to_replacement_characters(body, data):
    for cut in range(len(body) + 1):
        events, decoder = decode([body[:cut], body[cut:]])
        assert events == [ServerSentEvent("message", data)], f"split at byte {cut}"
        assert not decoder.pending


def test_a_character_split_across_chunks_is_not_garbled():
    body = "data: 🎉\n\n".encode()
    for cut in range(6, 10):
        assert decode([body[:cut], body[cut:]])[0] == [ServerSentEvent("message", "🎉")]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"x" * 100 + b"\n\n"],  # one long line
        [b"data: " + b"x" * 60 + b"\n", b"data: " + b"x" * 60 + b"\n"],  # many lines
        [b"x" * 60, b"x" * 60],  # an unterminated line, in pieces
        [b": " + b"x" * 200],  # even a comment line is bounded while unfinished
        [b"data: " + b"\xff" * 200],  # one character per invalid byte
        [b"data: " + b"x" * 94, b"\xe4"],  # the 101st character: a cut one, at flush
    ],
    ids=["long line", "many lines", "unterminated", "comment", "invalid utf-8", "cut character"],
)
def test_an_oversized_event_is_a_protocol_error(chunks):
    decoder = SSEDecoder(max_event_size=100)
    with pytest.raises(ProtocolError, match="exceeds 100"):
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.flush()


def test_the_size_bound_is_per_event():
    decoder = SSEDecoder(max_event_size=100)
    event = b"data: " + b"x" * 90 + b"\n\n"
    assert len(decoder.feed(event * 50)) == 50


def test_json_helper():
    assert ServerSentEvent("message", '{"a": [1]}').json() == {"a": [1]}
    with pytest.raises(ProtocolError, match="not JSON"):
        ServerSentEvent("message", "{nope").json()


def test_encode_sse():
    assert encode_sse("x") == "data: x\n\n"
    assert encode_sse("a\r\nb\rc\nd", event="E", id="u-1") == (
        "id: u-1\nevent: E\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert encode_sse("") == "data: \n\n"
    assert encode_sse(" lead") == "data:  lead\n\n"
    for bad in ({"event": "a\nb"}, {"id": "a\rb"}, {"id": "a\0b"}):
        with pytest.raises(ValueError):
            encode_sse("x", **bad)


# ----------------------------------------------------------------------
# Properties


def _split(data: bytes, cuts):
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0] + points, points + [len(data)])]


_sample_bodies = st.sampled_from([body for body, _ in SAMPLES.values()])


@settings(max_examples=300, deadline=None)
@given(_sample_bodies, st.lists(st.integers(min_value=0), max_size=20))
def test_any_split_of_a_sample_gives_the_same_events(body, cuts):
    assert decode(_split(body, cuts))[0] == decode([body])[0]


_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"), max_size=20)
_line_ends = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _streams(draw):
    """An encoded stream of random events with random line-end style."""
    events = draw(st.lists(st.tuples(_texts, st.none() | _names, st.none() | _names), max_size=5))
    end = draw(_line_ends)
    text = "".join(encode_sse(d, e, i) for d, e, i in events).replace("\n", end)
    return text.encode(), events


@settings(max_examples=300, deadline=None)
@given(_streams(), st.lists(st.integers(min_value=0), max_size=30))
def test_encoded_events_decode_back_however_they_are_split(stream, cuts):
    body, sent = stream
    events, decoder = decode(_split(body, cuts))
    assert not decoder.pending
    last_id = None
    expected = []
    for data, event, id_ in sent:
        last_id = id_ if id_ is not None else last_id
        normalised = data.replace("\r\n", "\n").replace("\r", "\n")
        expected.append(ServerSentEvent(event or "message", normalised, last_id))
    assert events == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=10))
def test_arbitrary_bytes_raise_only_protocol_error(data, cuts):
    decoder = SSEDecoder(max_event_size=64)
    try:
        for chunk in _split(data, cuts):
            for event in decoder.feed(chunk):
                assert isinstance(event, ServerSentEvent)
        decoder.flush()
    except ProtocolError:
        pass


def _outcome(chunks, max_event_size):
    """The events and ``pending`` a decoder gives for ``chunks``, or its error."""
    try:
        events, decoder = decode(chunks, max_event_size)
    except ProtocolError as exc:
        return str(exc)
    return events, decoder.pending


_utf8ish = st.lists(
    st.sampled_from(
        [
            b"data: ",
            b":",
            b"\n",
            b"\r",
            b"x",
            "é".encode(),
            "🎉".encode(),
            b"\xff",
            b"\xe4",
            b"\xbd",
            b"\xf0\x9f",
            b"\xed\xa0",
            b"\xef\xbb\xbf",
        ]
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=200), _utf8ish), st.lists(st.integers(min_value=0), max_size=10))
def test_any_bytes_decode_as_their_utf8_replacement_decoding_however_split(data, cuts):
    # the oracle: Python's decoder with errors="replace", then valid UTF-8 again
    replaced = data.decode("utf-8", "replace").encode("utf-8")
    assert _outcome(_split(data, cuts), 32) == _outcome([replaced], 32)


_sse_pieces = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"event: ",
        b"id: ",
        b"retry: 12",
        b": comment",
        b"x",
        b"yz",
        b" ",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        "é".encode(),
        "好".encode(),
        b"\xef\xbb\xbf",
        b"\xe5",
        b"\xff",
        b"\x00",
        b"data: " + b"w" * 40,
    ]
)


@settings(max_examples=1000, deadline=None)
@given(
    body=st.one_of(st.binary(max_size=200), st.lists(_sse_pieces, max_size=40).map(b"".join)),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    limit=st.sampled_from([16, 64, 1 << 20]),
)
def test_any_split_of_any_bytes_gives_the_same_outcome(body, cuts, limit):
    """Valid or not, under any size limit: the same events and ``pending``, or
    the same ``ProtocolError``, whole or split anywhere."""
    assert _outcome(_split(body, cuts), limit) == _outcome([body], limit)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"data: ", b"id", b":", b" ", b"x", b"\r", b"\n", b"retry: 9", b"event: ", "é".encode(), b"\xef\xbb\xbf"]
        ),
        max_size=40,
    ),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_field_soup_decodes_the_same_however_it_is_split(pieces, cuts):
    body = b"".join(pieces)
    assert decode(_split(body, cuts))[0] == decode([body])[0]


# ----------------------------------------------------------------------
# The size bound at its edges, pending, and what the errors say


@pytest.mark.parametrize("size", [0, -1])
def test_max_event_size_must_be_positive(size):
    with pytest.raises(ValueError) as info:
        SSEDecoder(size)
    assert str(info.value) == "max_event_size must be positive"


def test_the_smallest_bound_is_one_character():
    decoder = SSEDecoder(1)
    assert decoder.max_event_size == 1
    assert decoder.feed(b"x\n\n:\n") == []  # one-character lines fit
    with pytest.raises(ProtocolError) as info:
        decoder.feed(b"xy")
    assert str(info.value) == "event stream event exceeds 1 characters"


def test_a_line_of_exactly_the_bound_fits():
    assert decode([b"data: 1234\n\n"], max_event_size=10)[0] == [ServerSentEvent("message", "1234")]
    with pytest.raises(ProtocolError, match="^event stream event exceeds 9 characters$"):
        decode([b"data: 1234\n\n"], max_event_size=9)


def test_an_unfinished_line_of_exactly_the_bound_fits():
    decoder = SSEDecoder(10)
    assert decoder.feed(b"data: 1234") == []
    assert decoder.flush() == []  # the end of the stream adds nothing to it
    assert decoder.pending
    decoder = SSEDecoder(10)
    decoder.feed(b"data: 1234")
    with pytest.raises(ProtocolError, match="exceeds 10 characters"):
        decoder.feed(b"5")


def test_an_unfinished_line_is_measured_from_zero_after_a_line_ends():
    decoder = SSEDecoder(10)
    decoder.feed(b"data: a")
    decoder.feed(b"\n")  # the line "data: a" ends: 2 characters of data ("a" and its line end)
    assert decoder.feed(b"data: 12") == []  # 2 + 8 = 10
    with pytest.raises(ProtocolError):
        decoder.feed(b"3")


def test_the_data_of_an_event_adds_up_over_its_lines():
    # each "data:a" line is 6 characters and adds 2 ("a" and its line end) to the event
    body = b"data:a\ndata:a\ndata:a\n\n"
    assert decode([body], max_event_size=10)[0] == [ServerSentEvent("message", "a\na\na")]  # 4 + 6 = 10
    with pytest.raises(ProtocolError, match="exceeds 9 characters"):
        decode([body], max_event_size=9)
    with pytest.raises(ProtocolError, match="exceeds 11 characters"):
        decode([b"data:a\n" * 4 + b"\n"], max_event_size=11)  # the fourth line: 6 + 6 = 12


def test_each_event_starts_its_count_from_zero():
    events, _ = decode([b"data:a\ndata:b\n\ndata: 1234\n\n"], max_event_size=10)
    assert events == [ServerSentEvent("message", "a\nb"), ServerSentEvent("message", "1234")]


def test_a_fresh_decoder_is_not_pending():
    decoder = SSEDecoder()
    assert decoder.pending is False
    assert (decoder.last_event_id, decoder.retry) == (None, None)
    assert decoder.feed(b"") == [] and decoder.pending is False
    assert decoder.flush() == [] and decoder.pending is False


def test_a_leading_blank_line_dispatches_nothing():
    assert decode([b"\n\ndata: x\n\n"])[0] == [ServerSentEvent("message", "x")]
    assert decode([b"\xef\xbb\xbf\r\ndata: x\n\n"])[0] == [ServerSentEvent("message", "x")]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"id": "a\nb"}, "an event id must not contain CR, LF or NUL"),
        ({"id": "a\rb"}, "an event id must not contain CR, LF or NUL"),
        ({"id": "a\0b"}, "an event id must not contain CR, LF or NUL"),
        ({"event": "a\rb"}, "an event name must not contain CR or LF"),
        ({"event": "a\nb"}, "an event name must not contain CR or LF"),
    ],
)
def test_encode_sse_says_what_an_id_or_name_must_not_contain(kwargs, message):
    with pytest.raises(ValueError) as info:
        encode_sse("x", **kwargs)
    assert str(info.value) == message


def test_encode_sse_allows_nul_in_an_event_name_and_empty_id_and_event():
    assert encode_sse("x", event="a\0b") == "event: a\0b\ndata: x\n\n"
    assert encode_sse("x", event="", id="") == "id: \nevent: \ndata: x\n\n"
