"""OpenAI's request read into a call of the client (myshell_sync/openai_api/_translate.py):
every check and its message, the message mapping, the stop scanner, the token estimates."""

from __future__ import annotations

import logging

import pytest

from myshell_sync import BadRequestError, InvalidRequestError
from myshell_sync._stop import StopScanner
from myshell_sync.openai_api import _translate
from myshell_sync.openai_api._translate import (
    MAX_STOP,
    REFUSED,
    ROLES,
    SETTINGS,
    CompletionRequest,
    estimate_prompt_tokens,
    estimate_tokens,
    parse_request,
)

USER = [{"role": "user", "content": "Hi"}]


def parse(**kwargs):
    given = {"model": "m", "messages": USER, "supports_settings": True, "settings": {}, "ignored": {}}
    given.update(kwargs)
    return parse_request(**given)


def refused(param, message, **kwargs):
    """Assert ``parse(**kwargs)`` is refused for ``param`` with exactly ``message``."""
    with pytest.raises(InvalidRequestError) as info:
        parse(**kwargs)
    assert (info.value.param, str(info.value)) == (param, message)
    assert isinstance(info.value, BadRequestError) and isinstance(info.value, ValueError)
    return info.value


@pytest.fixture
def fresh_log(monkeypatch, caplog):
    """Each ignored parameter is logged once per process: start from none logged."""
    monkeypatch.setattr(_translate, "_logged", set())
    caplog.set_level(logging.DEBUG, logger="myshell_sync")
    return caplog


def test_the_tables():
    assert SETTINGS == ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty")
    assert ROLES == {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
    assert MAX_STOP == 4
    assert set(REFUSED) == {
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "parallel_tool_calls",
        "audio",
        "prediction",
    }


# ----------------------------------------------------------------------
# parse_request: the whole request


def test_a_minimal_request():
    assert parse() == CompletionRequest(
        model="m",
        messages=[{"role": "user", "content": "Hi"}],
        stream=False,
        settings={},
        stop=(),
        include_usage=False,
        timeout=None,
    )


def test_a_full_request():
    request = parse(
        stream=True,
        n=1,
        stop=["\n\n", "END"],
        stream_options={"include_usage": True},
        timeout=7.5,
        settings={"temperature": 0.7, "top_p": 1, "max_tokens": 64, "presence_penalty": -2, "frequency_penalty": 2},
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )
    assert request == CompletionRequest(
        model="m",
        stream=True,
        stop=("\n\n", "END"),
        include_usage=True,
        timeout=7.5,
        settings={"temperature": 0.7, "top_p": 1, "max_tokens": 64, "presence_penalty": -2, "frequency_penalty": 2},
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    )


@pytest.mark.parametrize("model", [None, "", 3, ["m"]])
def test_the_model_is_required(model):
    refused("model", "model is required: a model name (see models.list())", model=model)


@pytest.mark.parametrize("stream", [None, 1, "true"])
def test_stream_must_be_a_bool(stream):
    refused("stream", f"stream must be true or false, not {stream!r}", stream=stream)


@pytest.mark.parametrize("name, what", sorted(REFUSED.items()))
def test_what_no_transport_can_do_is_refused(name, what):
    refused(name, f"{name}: MyShell's chat APIs make no {what}; leave {name} out", ignored={name: [{"x": 1}]})


def test_a_refused_parameter_left_empty_is_accepted(fresh_log):
    assert parse(ignored={"tools": [], "audio": None, "parallel_tool_calls": False}).messages == USER
    assert "tools" not in fresh_log.text  # not ignored: not there


def test_the_first_refused_parameter_is_named():
    refused(
        "tools",
        "tools: MyShell's chat APIs make no tool calls; leave tools out",
        ignored={"audio": {"voice": "x"}, "tools": [1]},
    )


@pytest.mark.parametrize("n", [0, -1, True, 1.0, "1"])
def test_n_must_be_a_positive_integer(n):
    refused("n", f"n must be a positive integer, not {n!r}", n=n)


@pytest.mark.parametrize("n", [2, 10])
def test_n_over_one_is_refused(n):
    refused("n", "n > 1 is not supported: MyShell answers one choice per request; make n calls", n=n)


def test_n_of_one_or_none_is_fine():
    assert parse(n=1) == parse(n=None)


@pytest.mark.parametrize(
    "options, usage",
    [
        ({}, False),
        ({"include_usage": True}, True),
        ({"include_usage": 0}, False),
        ({"include_usage": 1}, True),
        (None, False),
    ],
)
def test_stream_options_include_usage(options, usage):
    assert parse(stream_options=options).include_usage is usage


@pytest.mark.parametrize("options", [[], "include_usage", True])
def test_stream_options_must_be_an_object(options):
    refused("stream_options", "stream_options must be an object", stream_options=options)


# ----------------------------------------------------------------------
# Generation settings


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("temperature", 0, 2),
        ("top_p", 0, 1),
        ("presence_penalty", -2, 2),
        ("frequency_penalty", -2, 2),
    ],
)
def test_a_setting_takes_its_range_ends_included(name, low, high):
    for value in (low, high, (low + high) / 2):
        assert parse(settings={name: value}).settings == {name: value}
    for value in (low - 0.001, high + 0.001, float("nan"), float("inf"), "1", True, [1]):
        refused(name, f"{name} must be a number from {low:g} to {high:g}, not {value!r}", settings={name: value})


def test_max_tokens_is_an_integer_from_one():
    assert parse(settings={"max_tokens": 1}).settings == {"max_tokens": 1}
    assert parse(settings={"max_tokens": 2**31 - 1}).settings == {"max_tokens": 2**31 - 1}
    for value in (0, 2**31, 1.0, 10.5, True, "5"):
        refused(
            "max_tokens",
            f"max_tokens must be an integer from 1 to 2.14748e+09, not {value!r}",
            settings={"max_tokens": value},
        )


def test_settings_are_checked_in_order_and_unknown_ones_are_not_read():
    refused("temperature", "temperature must be a number from 0 to 2, not 3", settings={"temperature": 3, "top_p": 5})
    assert parse(settings={"temperature": None, "seed": "anything"}).settings == {}


def test_settings_are_dropped_and_logged_once_when_the_transport_sends_none(fresh_log):
    request = parse(supports_settings=False, settings={"temperature": 0.5, "max_tokens": 9, "top_p": None})
    assert request.settings == {}
    assert fresh_log.messages == [
        "openai_api: temperature is accepted and ignored: this client's transport sends no generation settings",
        "openai_api: max_tokens is accepted and ignored: this client's transport sends no generation settings",
    ]
    assert all(record.levelno == logging.DEBUG for record in fresh_log.records)
    parse(supports_settings=False, settings={"temperature": 0.5})
    assert len(fresh_log.messages) == 2  # once per process
    with pytest.raises(InvalidRequestError):  # checked all the same
        parse(supports_settings=False, settings={"temperature": 5})


def test_settings_without_a_value_are_not_logged(fresh_log):
    assert parse(supports_settings=False, settings={"temperature": None}).settings == {}
    assert fresh_log.messages == []


def test_parameters_no_transport_has_are_ignored_and_logged_once(fresh_log):
    assert parse(ignored={"seed": 1, "user": "u", "logprobs": None}) == parse()
    assert fresh_log.messages == [
        "openai_api: seed is accepted and ignored: no MyShell transport has it",
        "openai_api: user is accepted and ignored: no MyShell transport has it",
    ]
    parse(ignored={"seed": 2})
    assert len(fresh_log.messages) == 2


def test_the_log_keeps_the_names_it_logged(fresh_log):
    parse(ignored={"seed": 1})
    assert _translate._logged == {"seed"}


# ----------------------------------------------------------------------
# Messages


def test_roles_are_mapped_and_extra_keys_dropped():
    messages = [
        {"role": "system", "content": "a"},
        {"role": "developer", "content": "b", "name": "x"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert parse(messages=messages).messages == [
        {"role": "system", "content": "a"},
        {"role": "system", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


def test_text_parts_are_joined():
    content = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]
    assert parse(messages=[{"role": "user", "content": content}]).messages == [
        {"role": "user", "content": "Hello, world"}
    ]
    assert parse(messages=[{"role": "user", "content": []}]).messages == [{"role": "user", "content": ""}]
    assert parse(messages=[{"role": "user", "content": ({"type": "text", "text": "t"},)}]).messages == [
        {"role": "user", "content": "t"}
    ]


@pytest.mark.parametrize("messages", [None, "Hi", b"Hi", [], (), {"role": "user", "content": "Hi"}, 5])
def test_messages_must_be_a_non_empty_list(messages):
    refused("messages", "messages must be a non-empty list of {'role', 'content'} objects", messages=messages)


@pytest.mark.parametrize("message", ["Hi", ["user", "Hi"], None])
def test_each_message_must_be_an_object(message):
    refused("messages[1]", "messages[1] must be an object with role and content", messages=[USER[0], message])


@pytest.mark.parametrize("role", ["tool", "function"])
def test_tool_results_are_refused(role):
    refused(
        "messages[0].role",
        f"messages[0].role is {role!r}: tool results need tool calls, which MyShell's chat APIs do not make",
        messages=[{"role": role, "content": "42"}],
    )


@pytest.mark.parametrize("role", ["bot", None, "User"])
def test_an_unknown_role_lists_the_roles(role):
    refused(
        "messages[0].role",
        f"messages[0].role is {role!r}: use one of system, developer, user, assistant",
        messages=[{"role": role, "content": "x"}],
    )


@pytest.mark.parametrize("key", ["tool_calls", "function_call"])
def test_a_message_carrying_tool_calls_is_refused(key):
    messages = [USER[0], {"role": "assistant", "content": "", key: [{"id": "1"}]}, USER[0]]
    refused("messages[1]", "messages[1] carries tool calls: MyShell's chat APIs make none", messages=messages)


def test_empty_tool_calls_are_fine():
    messages = [{"role": "assistant", "content": "a", "tool_calls": [], "function_call": None}, USER[0]]
    assert parse(messages=messages).messages == [{"role": "assistant", "content": "a"}, USER[0]]


def test_a_message_without_content_is_refused():
    refused("messages[0].content", "messages[0] has no content: give its text", messages=[{"role": "user"}])
    refused(
        "messages[1].content",
        "messages[1] has no content: give its text",
        messages=[USER[0], {"role": "user", "content": None}],
    )


@pytest.mark.parametrize(
    "content, kind",
    [(5, "int"), ({"type": "text", "text": "x"}, "dict"), (b"bytes", "bytes"), (bytearray(b"x"), "bytearray")],
)
def test_content_must_be_a_string_or_parts(content, kind):
    refused(
        "messages[0].content",
        f"messages[0].content must be a string or a list of text parts, not {kind}",
        messages=[{"role": "user", "content": content}],
    )


@pytest.mark.parametrize(
    "part, kind",
    [
        ({"type": "image_url", "image_url": {"url": "http://x"}}, "image_url"),
        ({"type": "input_audio"}, "input_audio"),
        ({"type": "text", "text": 5}, "text"),
        ({"type": "text"}, "text"),
        ({"text": "no type"}, "dict"),
        ("just a string", "str"),
        (None, "NoneType"),
    ],
)
def test_a_part_that_is_not_text_is_named(part, kind):
    refused(
        "messages[0].content[1]",
        f"messages[0].content[1] is a {kind} part: MyShell's chat APIs take text only; send the text parts alone",
        messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, part]}],
    )


@pytest.mark.parametrize("last", ["assistant", "system", "developer"])
def test_the_last_message_must_be_the_users(last):
    mapped = ROLES[last]
    refused(
        "messages",
        f"messages must end with a user message (the last is {mapped!r}): MyShell answers the user",
        messages=[USER[0], {"role": last, "content": "x"}],
    )


def test_the_role_named_is_the_last_ones():
    refused(
        "messages",
        "messages must end with a user message (the last is 'assistant'): MyShell answers the user",
        messages=[USER[0], {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}],
    )


def test_messages_are_checked_after_the_other_parameters():
    refused("n", "n > 1 is not supported: MyShell answers one choice per request; make n calls", n=2, messages=[])


# ----------------------------------------------------------------------
# stop


@pytest.mark.parametrize(
    "stop, expected",
    [
        (None, ()),
        ("END", ("END",)),
        (["a"], ("a",)),
        (("a", "b"), ("a", "b")),
        ([], ()),
        (["1", "2", "3", "4"], ("1", "2", "3", "4")),
    ],
)
def test_stop_strings(stop, expected):
    assert parse(stop=stop).stop == expected


@pytest.mark.parametrize("stop", [5, ["a", 5], [None], {"a": 1}.keys(), b"END"])
def test_stop_must_be_strings(stop):
    refused("stop", "stop must be a string or a list of strings", stop=stop)


def test_stop_takes_at_most_four():
    refused("stop", "stop takes at most 4 strings, not 5", stop=["1", "2", "3", "4", "5"])


@pytest.mark.parametrize("stop", ["", ["a", ""]])
def test_stop_strings_must_not_be_empty(stop):
    refused("stop", "stop strings must not be empty", stop=stop)


# ----------------------------------------------------------------------
# StopScanner


def scan(stops, chunks):
    scanner = StopScanner(stops)
    out = [scanner.feed(chunk) for chunk in chunks]
    return out, scanner.flush(), scanner.stopped


def test_no_stop_strings_pass_everything_through():
    assert scan((), ["a", "", "bc"]) == (["a", "", "bc"], "", False)
    scanner = StopScanner([])
    assert (scanner.stops, scanner.stopped) == ((), False)


def test_a_stop_within_a_chunk_cuts_there_and_drops_the_rest():
    assert scan(["END"], ["abcENDdef", "more"]) == (["abc", ""], "", True)


def test_a_stop_found_twice_cuts_at_the_first():
    assert scan(["X"], ["aXbXc"]) == (["a"], "", True)


def test_a_stop_at_the_very_start():
    assert scan(["X"], ["Xabc"]) == ([""], "", True)


def test_a_stop_split_across_chunks_is_held_back_then_cut():
    assert scan(["END"], ["abcE", "N", "Dx"]) == (["abc", "", ""], "", True)


def test_a_tail_that_is_not_a_stop_after_all_is_released():
    assert scan(["END"], ["abcE", "Nx"]) == (["abc", "ENx"], "", False)
    assert scan(["END"], ["abEN"]) == (["ab"], "EN", False)  # the reply ends: what was held comes out


def test_only_a_tail_that_can_still_become_a_stop_is_held():
    assert scan(["abc"], ["xxab"]) == (["xx"], "ab", False)
    assert scan(["abc"], ["xxb"]) == (["xxb"], "", False)  # "b" starts no stop string
    assert scan(["abc"], ["ab", "ab"]) == (["", "ab"], "ab", False)


def test_the_longest_possible_tail_is_held():
    # "aa" and "a" both start "aab": the longer is held
    assert scan(["aab"], ["xaa", "b"]) == (["x", ""], "", True)


def test_the_earliest_of_several_stops_wins():
    assert scan(["cd", "b"], ["abcd"]) == (["a"], "", True)
    assert scan(["b", "cd"], ["acdb"]) == (["a"], "", True)


def test_held_text_is_checked_with_the_next_chunk_for_any_stop():
    assert scan(["xyz", "yq"], ["axy", "q"]) == (["a", "x"], "", True)


def test_a_single_character_stop_holds_nothing():
    assert scan(["."], ["ab", "c.d"]) == (["ab", "c"], "", True)


def test_after_a_stop_everything_is_dropped_and_flush_gives_nothing():
    scanner = StopScanner(["E"])
    assert scanner.feed("aEb") == "a"
    assert scanner.feed("E") == "" and scanner.feed("xyz") == ""
    assert scanner.flush() == "" and scanner.stopped


def test_flush_clears_what_it_gives():
    scanner = StopScanner(["END"])
    assert scanner.feed("aEN") == "a"
    assert scanner.flush() == "EN"
    assert scanner.flush() == ""


def test_the_held_text_is_dropped_when_a_stop_matches():
    scanner = StopScanner(["END"])
    scanner.feed("E")
    assert scanner.feed("ND") == ""
    assert scanner._held == ""


def test_an_empty_chunk_changes_nothing():
    assert scan(["END"], ["aE", "", "ND"]) == (["a", "", ""], "", True)


# ----------------------------------------------------------------------
# Token estimates


@pytest.mark.parametrize("text, tokens", [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("a" * 8, 2), ("a" * 9, 3)])
def test_estimate_tokens_is_a_quarter_of_the_characters_rounded_up(text, tokens):
    assert estimate_tokens(text) == tokens


def test_estimate_prompt_tokens_adds_four_per_message():
    assert estimate_prompt_tokens([]) == 0
    assert estimate_prompt_tokens([{"role": "user", "content": ""}]) == 4
    assert estimate_prompt_tokens([{"role": "system", "content": "abcde"}, {"role": "user", "content": "a"}]) == (
        2 + 4 + 1 + 4
    )
