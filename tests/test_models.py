"""Models (myshell_sync/_models.py): names and bot uids, prompt formatting, message validation."""

import pytest

from myshell_sync import UnsupportedModelError, format_prompt, models
from myshell_sync._models import resolve_model, validate_messages


def test_known_models():
    assert dict(models) == {
        "samantha": "1e3be7fe89e94a809408b1154a2ee3e1",
        "gpt-3.5-turbo": "8077335db7cd47e29f7de486612cc7fd",
        "gpt-4": "01c8de4fbfc548df903712b0922a4e01",
    }


@pytest.mark.parametrize("model", [None, ""])
def test_empty_model_means_samantha(model):
    assert resolve_model(model) == models["samantha"]


def test_raw_bot_uid_is_accepted():
    assert resolve_model("0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("model", ["gpt-5", "0123456789ABCDEF0123456789ABCDEF", "abc", 42])
def test_unknown_model_names_the_known_ones(model):
    with pytest.raises(UnsupportedModelError) as info:
        resolve_model(model)
    assert isinstance(info.value, ValueError)
    for name in models:
        assert name in str(info.value)


def test_format_prompt_single_message_is_its_content():
    assert format_prompt([{"role": "user", "content": "Hi there"}]) == "Hi there"


def test_format_prompt_several_messages():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A poem?"},
    ]
    assert format_prompt(messages) == ("System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: A poem?\nAssistant:")


@pytest.mark.parametrize(
    "messages, error, words",
    [
        ("hello", TypeError, "list"),
        (None, TypeError, "list"),
        ([], ValueError, "empty"),
        (["hi"], TypeError, "messages[0]"),
        ([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}], ValueError, "messages[1]['role']"),
        ([{"role": "user"}], TypeError, "messages[0]['content']"),
        ([{"role": "user", "content": 3}], TypeError, "messages[0]['content']"),
    ],
)
def test_bad_messages_say_which_item(messages, error, words):
    with pytest.raises(error) as info:
        validate_messages(messages)
    assert words in str(info.value)


# ----------------------------------------------------------------------
# resolve_model: what the error says

from myshell_sync import InvalidTextError  # noqa: E402
from myshell_sync._models import (  # noqa: E402
    SETTINGS,
    check_settings,
    check_text,
    http_models,
    openapi_input,
    openapi_models,
    resolve_http_model,
    resolve_openapi_model,
)

KNOWN_WS = "gpt-3.5-turbo, gpt-4, samantha"  # sorted, as the error lists them


@pytest.mark.parametrize("name", sorted(models))
def test_each_known_name_gives_its_uid(name):
    assert resolve_model(name) == models[name]


def test_an_unknown_model_error_says_what_to_pass_and_keeps_the_model():
    with pytest.raises(UnsupportedModelError) as info:
        resolve_model("gpt-5")
    assert str(info.value) == (f"unsupported model 'gpt-5': use one of {KNOWN_WS}, or pass a bot's 32-hex uid")
    assert info.value.model == "gpt-5"


def test_a_uid_must_be_exactly_32_lowercase_hex_digits():
    for model in ("0" * 31, "0" * 33, "0" * 31 + "g", "0" * 32 + "\n"):
        with pytest.raises(UnsupportedModelError):
            resolve_model(model)
    assert resolve_model("f" * 32) == "f" * 32


# ----------------------------------------------------------------------
# resolve_http_model


def test_http_models_table():
    assert dict(http_models) == {"assistant": "4738"}


@pytest.mark.parametrize("model", [None, ""])
def test_http_empty_model_means_the_assistant_bot(model):
    assert resolve_http_model(model) == "4738"
    assert resolve_http_model(model, {"": "1", "x": "2"}) == "4738"


def test_http_known_name_and_numeric_ids():
    assert resolve_http_model("assistant") == "4738"
    assert resolve_http_model("0") == "0"
    assert resolve_http_model("9") == "9"
    assert resolve_http_model("1" * 19) == "1" * 19  # the longest id
    assert resolve_http_model("4738", {}) == "4738"


def test_http_extra_names_come_first():
    extra = {"mine": "123", "assistant": "999"}
    assert resolve_http_model("mine", extra) == "123"
    assert resolve_http_model("assistant", extra) == "999"  # the caller's mapping wins
    assert resolve_http_model("assistant", None) == "4738"
    assert resolve_http_model("77", extra) == "77"


@pytest.mark.parametrize("model", ["1" * 20, "12a", "-1", "1.5", "4738\n", " 4738", "mine"])
def test_http_unknown_model_says_to_pass_a_numeric_id(model):
    with pytest.raises(UnsupportedModelError) as info:
        resolve_http_model(model)
    assert str(info.value) == f"unsupported model {model!r}: use one of assistant, or pass a bot's numeric id"
    assert info.value.model == model


@pytest.mark.parametrize("model", [42, 4738, b"4738", ["assistant"]])
def test_http_a_model_that_is_not_a_string_is_unsupported(model):
    # an UnsupportedModelError (a ValueError), not a TypeError from the regular expressions
    with pytest.raises(UnsupportedModelError) as info:
        resolve_http_model(model, {"mine": "1"})
    assert str(info.value).endswith("or pass a bot's numeric id")
    assert info.value.model == model


@pytest.mark.parametrize("model", ["samantha", "gpt-4", "0123456789abcdef0123456789abcdef"])
def test_http_a_websocket_name_or_uid_says_the_http_api_needs_a_numeric_id(model):
    with pytest.raises(UnsupportedModelError) as info:
        resolve_http_model(model)
    assert str(info.value) == (
        f"unsupported model {model!r}: use one of assistant, the HTTP API takes a bot's numeric id "
        '(e.g. "4738"), not a WebSocket model name or 32-hex uid; no numeric id is known for this one: '
        "pass the id, or map the name with Myshell(http_bot_ids={...})"
    )


def test_http_a_websocket_name_mapped_in_extra_is_used():
    assert resolve_http_model("samantha", {"samantha": "555"}) == "555"


# ----------------------------------------------------------------------
# resolve_openapi_model

KNOWN_OPENAPI = "claude-3.5-sonnet, gpt-3.5-turbo, gpt-4-turbo, gpt-4o, gpt-4o-mini"


@pytest.mark.parametrize("model", [None, ""])
def test_openapi_empty_model_means_gpt_4o_mini(model):
    assert resolve_openapi_model(model) == "1744218088699597788" == openapi_models["gpt-4o-mini"]


@pytest.mark.parametrize("name", sorted(openapi_models))
def test_openapi_each_known_name_gives_its_widget_id(name):
    assert resolve_openapi_model(name) == openapi_models[name]


def test_openapi_numeric_widget_ids():
    assert resolve_openapi_model("0") == "0"
    assert resolve_openapi_model("9") == "9"
    assert resolve_openapi_model("1" * 20) == "1" * 20  # the longest id


@pytest.mark.parametrize("model", ["1" * 21, "x1", "1x", "12\n", "claude", 42, None.__class__])
def test_openapi_unknown_model_says_to_pass_a_widget_id(model):
    with pytest.raises(UnsupportedModelError) as info:
        resolve_openapi_model(model)
    assert str(info.value) == f"unsupported model {model!r}: use one of {KNOWN_OPENAPI}, or pass a numeric widget id"
    assert info.value.model == model


@pytest.mark.parametrize("model", ["samantha", "gpt-4", "assistant", "0123456789abcdef0123456789abcdef"])
def test_openapi_a_web_app_name_says_the_key_based_api_does_not_serve_it(model):
    with pytest.raises(UnsupportedModelError) as info:
        resolve_openapi_model(model)
    assert str(info.value) == (
        f"unsupported model {model!r}: use one of {KNOWN_OPENAPI}, this is a name of the web app's chat API, "
        'which the key-based API (transport="openapi") does not serve; pick a name here, or pass a numeric '
        "widget id"
    )


# ----------------------------------------------------------------------
# openapi_input


def test_openapi_input_single_user_message():
    assert openapi_input([{"role": "user", "content": "Hi"}], {}) == {"user_prompt": "Hi", "memory": []}


def test_openapi_input_history_system_prompts_and_settings():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": "Be kind."},
        {"role": "assistant", "content": "Hello!", "name": "ignored"},
        {"role": "user", "content": "A poem?"},
    ]
    data = openapi_input(messages, {"temperature": 0.5, "max_tokens": 10})
    assert data == {
        "user_prompt": "A poem?",
        "memory": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "system_prompt": "Be brief.\n\nBe kind.",
        "temperature": 0.5,
        "max_tokens": 10,
    }
    assert list(data)[:3] == ["user_prompt", "memory", "system_prompt"]


@pytest.mark.parametrize("last", ["assistant", "system"])
def test_openapi_input_needs_a_user_message_last(last):
    with pytest.raises(ValueError) as info:
        openapi_input([{"role": "user", "content": "a"}, {"role": last, "content": "b"}], {})
    assert str(info.value) == (
        f"the last message must be the user's, not {last!r}: the key-based API answers a user turn"
    )


def test_openapi_input_validates_the_messages():
    with pytest.raises(ValueError, match=r"messages must not be empty"):
        openapi_input([], {})


# ----------------------------------------------------------------------
# check_settings


def test_settings_table():
    assert dict(SETTINGS) == {
        "temperature": float,
        "top_p": float,
        "max_tokens": int,
        "presence_penalty": float,
        "frequency_penalty": float,
    }


def test_check_settings_keeps_numbers_and_drops_none():
    given = {"temperature": 0.5, "top_p": 1, "max_tokens": 100, "presence_penalty": -1.5, "frequency_penalty": None}
    assert check_settings(given) == {"temperature": 0.5, "top_p": 1, "max_tokens": 100, "presence_penalty": -1.5}
    assert check_settings({}) == {}
    assert check_settings({"max_tokens": None}) == {}
    assert check_settings({"top_p": None, "temperature": 1.5}) == {"temperature": 1.5}  # past a None


@pytest.mark.parametrize(
    "name, value, kind",
    [
        ("temperature", "0.5", "a number"),
        ("temperature", True, "a number"),
        ("top_p", None.__class__, "a number"),
        ("max_tokens", 1.0, "an int"),
        ("max_tokens", "10", "an int"),
        ("max_tokens", False, "an int"),
    ],
)
def test_check_settings_says_what_each_setting_takes(name, value, kind):
    with pytest.raises(TypeError) as info:
        check_settings({name: value})
    assert str(info.value) == f"{name} must be {kind}, not {value!r}"


def test_check_settings_checks_every_setting_not_only_the_first():
    with pytest.raises(TypeError, match="^max_tokens must be an int"):
        check_settings({"temperature": 0.5, "max_tokens": 0.5})


# ----------------------------------------------------------------------
# check_text


def test_check_text_accepts_valid_unicode():
    check_text([{"role": "user", "content": "plain"}, {"role": "user", "content": "привет 😀 \u2028"}])
    check_text([])


def test_check_text_names_the_message_and_the_lone_surrogate():
    messages = [{"role": "user", "content": "fine"}, {"role": "user", "content": "ab\udcffc"}]
    with pytest.raises(InvalidTextError) as info:
        check_text(messages)
    assert str(info.value) == (
        "messages[1]['content'] is not valid Unicode text: it holds a lone surrogate ('\\udcff' at index 2), "
        'as undecodable bytes read with errors="surrogateescape" do; decode the input strictly, or with '
        'errors="replace"'
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_check_text_checks_past_an_ascii_message():
    with pytest.raises(InvalidTextError, match=r"^messages\[2\]\['content'\] .*\('\\ud800' at index 0\)"):
        check_text(
            [{"role": "user", "content": "a"}, {"role": "user", "content": "é"}, {"role": "user", "content": "\ud800"}]
        )


# ----------------------------------------------------------------------
# validate_messages and format_prompt: the whole messages


@pytest.mark.parametrize(
    "messages, error, text",
    [
        ("hello", TypeError, "messages must be a list of {'role': ..., 'content': ...} dicts, not str"),
        (b"hello", TypeError, "messages must be a list of {'role': ..., 'content': ...} dicts, not bytes"),
        (None, TypeError, "messages must be a list of {'role': ..., 'content': ...} dicts, not NoneType"),
        ({"role": "user"}, TypeError, "messages must be a list of {'role': ..., 'content': ...} dicts, not dict"),
        ([], ValueError, "messages must not be empty: give at least one user message"),
        (["hi"], TypeError, "messages[0] must be a dict with 'role' and 'content', not str"),
        (
            [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}],
            ValueError,
            "messages[1]['role'] is 'bot'; use one of system, user, assistant",
        ),
        ([{"content": "a"}], ValueError, "messages[0]['role'] is None; use one of system, user, assistant"),
        ([{"role": "user"}], TypeError, "messages[0]['content'] must be a str, not NoneType"),
        ([{"role": "user", "content": 3}], TypeError, "messages[0]['content'] must be a str, not int"),
    ],
)
def test_bad_messages_messages(messages, error, text):
    with pytest.raises(error) as info:
        validate_messages(messages)
    assert type(info.value) is error
    assert str(info.value) == text


def test_valid_messages_pass():
    validate_messages([{"role": role, "content": ""} for role in ("system", "user", "assistant")])
    validate_messages(({"role": "user", "content": "a"},))  # any sequence


def test_format_prompt_validates_and_two_messages_get_the_role_lines():
    assert format_prompt([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == (
        "User: a\nUser: b\nAssistant:"
    )
    with pytest.raises(ValueError, match="must not be empty"):
        format_prompt([])
    with pytest.raises(TypeError):
        format_prompt([{"role": "user", "content": None}])
