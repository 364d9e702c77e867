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
    assert format_prompt(messages) == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: A poem?\nAssistant:"
    )


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
