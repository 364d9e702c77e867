"""The pure Engine.IO/Socket.IO codec: examples, and properties (hypothesis) whose
example counts RELIABILITY.md gives."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from myshell_sync import ProtocolError
from myshell_sync import _codec as codec


def test_encode_connect_with_auth():
    frame = codec.encode_connect("/chat", {"token": None, "visitorId": "v-1"})
    assert frame == '40/chat,{"token":null,"visitorId":"v-1"}'


def test_encode_event_keeps_unicode_readable():
    frame = codec.encode_event("/chat", "text_chat", {"text": "привет 😀"})
    assert frame == '42/chat,["text_chat",{"text":"привет 😀"}]'


def test_encode_disconnect_ack_and_pong():
    assert codec.encode_disconnect("/chat") == "41/chat,"
    assert codec.encode_ack("/chat", 17) == "43/chat,17[]"
    assert codec.encode_pong("2") == "3"
    assert codec.encode_pong("2probe") == "3probe"


def test_decode_open_packet():
    opened = codec.decode_open(
        '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
    )
    assert opened == codec.OpenPacket("abc", 25.0, 20.0, 1000000)


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "40",
        "0",
        "0not json",
        "0[1,2]",
        '0{"sid":"a"}',
        '0{"sid":"a","pingInterval":"25000","pingTimeout":20000}',
        '0{"sid":"a","pingInterval":25000,"pingTimeout":0}',
        '0{"sid":1,"pingInterval":25000,"pingTimeout":20000}',
    ],
)
def test_decode_open_rejects_bad_packets(frame):
    with pytest.raises(ProtocolError):
        codec.decode_open(frame)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('0/chat,{"sid":"x"}', codec.SioPacket(0, "/chat", None, {"sid": "x"})),
        ("0", codec.SioPacket(0, "/", None, None)),
        ("1/chat,", codec.SioPacket(1, "/chat", None, None)),
        ('4/chat,{"message":"no"}', codec.SioPacket(4, "/chat", None, {"message": "no"})),
        ('2/chat,["a",{"b":1}]', codec.SioPacket(2, "/chat", None, ["a", {"b": 1}])),
        ('2/chat,17["a"]', codec.SioPacket(2, "/chat", 17, ["a"])),
        ('2["a"]', codec.SioPacket(2, "/", None, ["a"])),
        ("3/chat,5[]", codec.SioPacket(3, "/chat", 5, [])),
        ('2/chat?x=1,["a"]', codec.SioPacket(2, "/chat", None, ["a"])),
        (
            '51-/chat,["audio_stream",{"_placeholder":true,"num":0}]',
            codec.SioPacket(5, "/chat", None, ["audio_stream", {"_placeholder": True, "num": 0}], 1),
        ),
    ],
)
def test_decode_sio(text, expected):
    assert codec.decode_sio(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "9",
        "x",
        "2/chat,",  # event without payload
        "2/chat,{}",  # event payload not an array
        "2/chat,[]",  # empty event array
        "2/chat,[1,2]",  # event name not a string
        "2/chat,[",  # broken JSON
        '5/chat,["a"]',  # binary event without attachment count
        "5" + "1" * 12 + '-/chat,["a"]',  # too many attachment digits
        "3/chat," + "1" * 101 + "[]",  # ack id too long
        "2/chat," + "[" * 100000,  # deep nesting
    ],
)
def test_decode_sio_rejects_bad_packets(text):
    with pytest.raises(ProtocolError):
        codec.decode_sio(text)


def _json_trees(scalars, *, max_size, max_leaves):
    """JSON values: ``scalars`` in lists and objects of up to ``max_size`` items."""
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=max_size) | st.dictionaries(st.text(), children, max_size=max_size)
        ),
        max_leaves=max_leaves,
    )


json_values = _json_trees(st.none() | st.booleans() | st.integers() | st.text(), max_size=4, max_leaves=12)


@settings(max_examples=300)
@given(name=st.text(min_size=1), payload=json_values)
def test_event_round_trip(name, payload):
    frame = codec.encode_event("/chat", name, payload)
    assert frame[0] == codec.EIO_MESSAGE
    packet = codec.decode_sio(frame[1:])
    assert packet == codec.SioPacket(codec.SIO_EVENT, "/chat", None, [name, payload])


@settings(max_examples=300)
@given(auth=st.dictionaries(st.text(), json_values, max_size=4))
def test_connect_round_trip(auth):
    packet = codec.decode_sio(codec.encode_connect("/chat", auth)[1:])
    assert packet == codec.SioPacket(codec.SIO_CONNECT, "/chat", None, auth)


@settings(max_examples=1000)
@given(st.text())
def test_decode_of_arbitrary_text_raises_only_protocol_error(text):
    for decode in (codec.decode_sio, codec.decode_open):
        try:
            decode(text)
        except ProtocolError:
            pass


@settings(max_examples=300)
@given(prefix=st.sampled_from(["2/chat,", "0/chat,", "4/chat,", "3/chat,1", "51-/chat,", "2"]), body=st.text())
def test_decode_of_near_valid_packets_raises_only_protocol_error(prefix, body):
    try:
        codec.decode_sio(prefix + body)
    except ProtocolError:
        pass


def test_decoded_event_data_is_plain_json():
    payload = {"reqId": "r", "data": {"text": "a\nb", "isFinal": False}}
    packet = codec.decode_sio("2/chat," + json.dumps(["text_stream", payload]))
    assert packet.data == ["text_stream", payload]


def test_fast_event_path_matches_the_general_decoder():
    frame = '42/chat,["text_stream",{"reqId":"r","data":{"text":"hi","isFinal":false}}]'
    assert codec.decode_event_frame(frame, "42/chat,") == codec.decode_sio(frame[1:]).data


@pytest.mark.parametrize("frame", ['42/chat,7["a"]', '42/other,["a"]', "2", '40/chat,{"sid":"x"}'])
def test_fast_event_path_declines_other_shapes(frame):
    assert codec.decode_event_frame(frame, "42/chat,") is None


@pytest.mark.parametrize("frame", ["42/chat,[", "42/chat,[]", "42/chat,[1]", '42/chat,["a"] x', '42/chat,["a"]]'])
def test_fast_event_path_rejects_broken_events(frame):
    with pytest.raises(ProtocolError):
        codec.decode_event_frame(frame, "42/chat,")


@settings(max_examples=500)
@given(st.text())
def test_fast_event_path_raises_only_protocol_error(body):
    try:
        codec.decode_event_frame("42/chat,[" + body, "42/chat,")
    except ProtocolError:
        pass


# ----------------------------------------------------------------------
# More properties: the other packets' round trips, the fast path against the
# general decoder, every decoder on arbitrary text


# smaller trees than json_values, with floats too
_json = _json_trees(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    max_size=3,
    max_leaves=8,
)


_namespaces = st.sampled_from(["/", "/chat", "/other"])


@settings(max_examples=300, deadline=None)
@given(namespace=_namespaces, ack_id=st.integers(min_value=0, max_value=10**30), args=st.lists(_json, max_size=3))
def test_ack_round_trip(namespace, ack_id, args):
    frame = codec.encode_ack(namespace, ack_id, *args)
    assert codec.decode_sio(frame[1:]) == codec.SioPacket(codec.SIO_ACK, namespace, ack_id, args)


@settings(max_examples=100, deadline=None)
@given(namespace=_namespaces)
def test_disconnect_round_trip(namespace):
    assert codec.decode_sio(codec.encode_disconnect(namespace)[1:]) == codec.SioPacket(
        codec.SIO_DISCONNECT, namespace, None, None
    )


@settings(max_examples=300, deadline=None)
@given(
    sid=st.text(),
    interval=st.integers(1, 10**9),
    timeout=st.integers(1, 10**9),
    max_payload=st.none() | st.integers(1, 10**12),
    extra=st.dictionaries(st.text(), _json, max_size=3),
)
def test_open_packet_round_trip(sid, interval, timeout, max_payload, extra):
    info = {**extra, "sid": sid, "pingInterval": interval, "pingTimeout": timeout, "maxPayload": max_payload}
    opened = codec.decode_open("0" + json.dumps(info))
    assert opened == codec.OpenPacket(sid, interval / 1000, timeout / 1000, max_payload)


@settings(max_examples=300, deadline=None)
@given(payload=st.text(max_size=20))
def test_pong_echoes_the_ping_payload(payload):
    assert codec.encode_pong("2" + payload) == "3" + payload


@settings(max_examples=1000, deadline=None)
@given(
    body=st.one_of(
        st.text(),
        st.builds(
            lambda name, payload, tail: json.dumps([name, payload]) + tail,
            st.text(min_size=1),
            _json,
            st.sampled_from(["", " ", "\n", "\u2003", "x", "]"]),
        ),
    )
)
def test_fast_event_path_agrees_with_the_general_decoder(body):
    """``decode_event_frame`` (the reader's fast path) accepts, declines or
    refuses exactly what ``decode_sio`` would."""
    try:
        fast = codec.decode_event_frame("42/chat," + body, "42/chat,")
    except ProtocolError:
        with pytest.raises(ProtocolError):
            codec.decode_sio("2/chat," + body)
        return
    if fast is None:
        return  # another shape (an ack id...): the reader uses decode_sio
    assert codec.decode_sio("2/chat," + body) == codec.SioPacket(codec.SIO_EVENT, "/chat", None, fast)


@settings(max_examples=1000, deadline=None)
@given(
    prefix=st.sampled_from(["", "0", "4", "40", "42", "42/chat,", "43/chat,", "44/chat,", "45", "451-", "42/chat,7"]),
    body=st.text(),
)
def test_every_decoder_raises_only_protocol_error(prefix, body):
    text = prefix + body
    for decode in (
        codec.decode_open,
        lambda t: codec.decode_sio(t[1:]),
        lambda t: codec.decode_event_frame(t, "42/chat,"),
    ):
        try:
            decode(text)
        except ProtocolError:
            pass


# ----------------------------------------------------------------------
# Boundaries, rare branches and what each error says (the mutation run's findings)


@pytest.mark.parametrize(
    "frame, message",
    [
        ("40", "expected the Engine.IO open packet, got '40'"),
        ("", "expected the Engine.IO open packet, got ''"),
        ("0not json", "open packet is not JSON: '0not json'"),
        ("0[1,2]", "open packet is not a JSON object: '0[1,2]'"),
        ('0{"sid":"a"}', 'open packet lacks sid/pingInterval/pingTimeout: \'0{"sid":"a"}\''),
        (
            '0{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":0}',
            'open packet has a bad maxPayload: \'0{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":0}\'',
        ),
    ],
)
def test_decode_open_says_what_is_wrong(frame, message):
    with pytest.raises(ProtocolError) as info:
        codec.decode_open(frame)
    assert str(info.value) == message


def test_an_open_packet_without_max_payload_has_none():
    assert codec.decode_open('0{"sid":"s","pingInterval":25000,"pingTimeout":5000}') == codec.OpenPacket(
        "s", 25.0, 5.0, None
    )
    assert codec.decode_open('0{"sid":"s","pingInterval":1,"pingTimeout":1,"maxPayload":null}').max_payload is None


@pytest.mark.parametrize("max_payload", ["0", '"1000"', "-1", "true", "[1]", "{}"])
def test_an_open_packet_with_a_bad_max_payload_is_refused(max_payload):
    frame = '0{"sid":"s","pingInterval":1,"pingTimeout":1,"maxPayload":%s}' % max_payload
    with pytest.raises(ProtocolError, match="^open packet has a bad maxPayload: "):
        codec.decode_open(frame)


def test_an_open_packet_with_the_smallest_max_payload_and_float_intervals():
    assert codec.decode_open('0{"sid":"","pingInterval":0.5,"pingTimeout":1,"maxPayload":1}') == codec.OpenPacket(
        "", 0.0005, 0.001, 1
    )


@pytest.mark.parametrize("field", ["pingInterval", "pingTimeout"])
@pytest.mark.parametrize("value", ["0", "-5", "true", "null", '"25000"'])
def test_an_open_packet_with_a_bad_interval_is_refused(field, value):
    info = {"sid": "s", "pingInterval": 1, "pingTimeout": 1}
    frame = "0" + json.dumps(info).replace(f'"{field}": 1', f'"{field}": {value}')
    with pytest.raises(ProtocolError, match="^open packet lacks sid/pingInterval/pingTimeout: "):
        codec.decode_open(frame)


@pytest.mark.parametrize(
    "text, expected",
    [
        # packet type 6 (binary ack) and the attachment count's bounds
        ("61-/chat,3[]", codec.SioPacket(6, "/chat", 3, [], 1)),
        ("60-[]", codec.SioPacket(6, "/", None, [], 0)),
        ("5" + "9" * 10 + '-["a"]', codec.SioPacket(5, "/", None, ["a"], 9999999999)),
        # a namespace with a dash close to the attachment count
        ('51-/a-b,["x"]', codec.SioPacket(5, "/a-b", None, ["x"], 1)),
        # a namespace without a comma: nothing follows it
        ("1/chat", codec.SioPacket(1, "/chat", None, None)),
        ("0/a", codec.SioPacket(0, "/a", None, None)),
        # the query is cut at its first "?"
        ('2/chat?a=1?b=2,["a"]', codec.SioPacket(2, "/chat", None, ["a"])),
        # ack ids with every digit, 0 alone, and the longest allowed
        ('2/chat,90["a"]', codec.SioPacket(2, "/chat", 90, ["a"])),
        ("3/chat,0[]", codec.SioPacket(3, "/chat", 0, [])),
        ("3/chat,1234567890[]", codec.SioPacket(3, "/chat", 1234567890, [])),
        ("3/chat," + "9" * 100 + "[]", codec.SioPacket(3, "/chat", int("9" * 100), [])),
        ("3" + "1" * 100 + "[]", codec.SioPacket(3, "/", int("1" * 100), [])),
        # an ack id alone, and JSON with space around it
        ("3/chat,5", codec.SioPacket(3, "/chat", 5, None)),
        ('2/chat, ["a"] ', codec.SioPacket(2, "/chat", None, ["a"])),
    ],
)
def test_decode_sio_rare_shapes(text, expected):
    assert codec.decode_sio(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "not a Socket.IO packet: ''"),
        ("7", "not a Socket.IO packet: '7'"),
        ("/", "not a Socket.IO packet: '/'"),
        ('5["a"]', "bad attachment count: '5[\"a\"]'"),
        ("6123", "bad attachment count: '6123'"),  # digits but no dash
        ("6-[]", "bad attachment count: '6-[]'"),
        ("5" + "1" * 11 + '-["a"]', "bad attachment count: '5" + "1" * 11 + '-["a"]\''),
        ("3/chat," + "1" * 101 + "[]", "ack id is too long: '3/chat," + "1" * 101 + "[]'"),
        ("2/chat,[", "packet payload is not JSON: '2/chat,['"),
        ("2/chat,7", "event payload is not [name, ...]: '2/chat,7'"),
        ('2/chat,{"a":1}', "event payload is not [name, ...]: '2/chat,{\"a\":1}'"),
        ("51-/chat,[]", "event payload is not [name, ...]: '51-/chat,[]'"),
    ],
)
def test_decode_sio_says_what_is_wrong(text, message):
    with pytest.raises(ProtocolError) as info:
        codec.decode_sio(text)
    assert str(info.value) == message


def test_the_other_packet_types_need_no_event_array():
    for ptype in "01346":
        prefix = ptype + ("1-" if ptype == "6" else "")
        assert codec.decode_sio(prefix + '/chat,{"a":1}').data == {"a": 1}


def test_error_messages_clip_long_frames():
    long = "2/chat," + "x" * 200
    with pytest.raises(ProtocolError) as info:
        codec.decode_sio(long)
    assert str(info.value) == "packet payload is not JSON: " + repr(long[:120] + "...")
    exact = "2/chat," + "x" * 113  # 120 characters: not clipped
    with pytest.raises(ProtocolError) as info:
        codec.decode_sio(exact)
    assert str(info.value) == "packet payload is not JSON: " + repr(exact)
    assert codec._clip("abcdef", 5) == "'abcde...'" and codec._clip("abcde", 5) == "'abcde'"


@pytest.mark.parametrize(
    "frame, message",
    [
        ("42/chat,[", "packet payload is not JSON: '42/chat,['"),
        ("42/chat,[]", "event payload is not [name, ...]: '42/chat,[]'"),
        ('42/chat,["a"] x', "event payload is not [name, ...]: '42/chat,[\"a\"] x'"),
    ],
)
def test_fast_event_path_says_what_is_wrong(frame, message):
    with pytest.raises(ProtocolError) as info:
        codec.decode_event_frame(frame, "42/chat,")
    assert str(info.value) == message


def test_fast_event_path_allows_json_space_after_the_array():
    assert codec.decode_event_frame('42/chat,["a"] \t\r\n', "42/chat,") == ["a"]
    assert codec.decode_event_frame('42["a",1]', "42") == ["a", 1]


def test_the_root_namespace_has_no_prefix():
    assert codec.encode_event("/", "a", 1) == '42["a",1]'
    assert codec.encode_connect("/", {"t": 1}) == '40{"t":1}'
    assert codec.encode_disconnect("/") == "41"
    assert codec.encode_ack("/", 3, "x") == '433["x"]'
    assert codec.encode_ack("/chat", 0, 1, None) == "43/chat,0[1,null]"


def test_is_eio_type():
    assert [c for c in "0123456789x4" if codec.is_eio_type(c)] == list("01234564")
    assert not codec.is_eio_type("")
