"""The ``llm`` plugin, through the real ``llm``: its CLI (``llm -m``, ``-s``,
``-o``, ``-c``, ``llm chat`` on stdin, ``llm keys``, ``llm plugins``) and its
Python API (``llm.get_model(...).prompt(...)``), against the local server.

The plugin is found through this checkout's ``llm`` entry point (an editable
install), and pointed at the server by ``$MYSHELL_BASE_URL`` and
``$MYSHELL_OPENAPI_URL``; ``$LLM_USER_PATH`` keeps llm's keys and logs in
the test's own directory. The local bots echo their prompt, so every reply
is known exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
llm = pytest.importorskip("llm", reason="the llm plugin is tested with llm (in the test extra, Python 3.10+)")

from myshell_sync import AuthenticationError, InsufficientEnergyError, format_prompt  # noqa: E402
from myshell_sync.integrations import llm_plugin  # noqa: E402
from myshell_sync.local import LOCAL_API_KEY, LocalMyshellServer, openapi_reply, reply_chunks  # noqa: E402

LLM = Path(sys.executable).parent / "llm"
POEM = "Write a poem about love"


def echo(model: str, messages: list[dict[str, str]]) -> str:
    """What the local WebSocket/HTTP bot ``model`` answers to ``messages``."""
    return "".join(reply_chunks(model, format_prompt(messages)))


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def environment(server: LocalMyshellServer, home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MYSHELL_", "LLM_"))}
    env.update(
        LLM_USER_PATH=str(home),
        MYSHELL_BASE_URL=server.base_url,
        MYSHELL_OPENAPI_URL=server.base_url,
        MYSHELL_CAPTCHA_DELAY="0",
    )
    return env


@pytest.fixture
def cli(local_server, tmp_path):
    """``cli("-m", ..., input=...)``: run the llm command against the local server."""
    if not LLM.exists():
        pytest.skip("the llm command is not installed next to this interpreter")
    env = environment(local_server, tmp_path)

    def run(*args: str, input: str = "", check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(LLM), *args], input=input, capture_output=True, text=True, env={**env, **extra_env}, timeout=120
        )
        if check:
            assert result.returncode == 0, f"llm {' '.join(args)}: {result.stderr}"
        return result

    return run


@pytest.fixture
def api(local_server, tmp_path, monkeypatch):
    """The llm Python API in this process, pointed at the local server."""
    for name in list(os.environ):
        if name.startswith(("MYSHELL_", "LLM_")):
            monkeypatch.delenv(name)
    for name, value in environment(local_server, tmp_path).items():
        monkeypatch.setenv(name, value)
    yield llm
    llm_plugin.close_clients()


# ---------------------------------------------------------------------------
# The CLI


def test_llm_plugins_lists_the_plugin_and_llm_models_lists_every_transport(cli):
    plugins = json.loads(cli("plugins").stdout)
    assert {"name": "myshell_sync", "hooks": ["register_models"]}.items() <= next(
        p for p in plugins if p["name"] == "myshell_sync"
    ).items()
    models = cli("models").stdout.splitlines()
    assert "MyshellModel: myshell/gpt-4" in models
    assert "MyshellModel: myshell-http/assistant (aliases: myshell/assistant)" in models
    assert "MyshellKeyApiModel: myshell-openapi/gpt-4o (aliases: myshell/gpt-4o)" in models
    # a name two transports share gets no alias
    assert "MyshellKeyApiModel: myshell-openapi/gpt-3.5-turbo" in models
    assert "MyshellModel: myshell/gpt-3.5-turbo" in models


def test_llm_prompt_answers_on_the_websocket_and_http_transports(cli, local_server):
    assert cli("-m", "myshell/gpt-4", POEM).stdout == echo("gpt-4", [user(POEM)]) + "\n"
    assert local_server.requests[-1]["text"] == POEM
    assert cli("-m", "myshell/assistant", "--no-stream", "hi").stdout == "assistant: hi\n"  # the alias
    assert local_server.http_requests[-1]["json"]["message"] == "hi"


def test_llm_system_prompt_and_continue_send_the_history(cli, local_server):
    first = [{"role": "system", "content": "Be brief"}, user("one")]
    reply = echo("gpt-4", first)
    assert cli("-m", "myshell/gpt-4", "-s", "Be brief", "one").stdout == reply + "\n"
    second = first + [assistant(reply), user("two")]
    assert cli("-c", "two").stdout == echo("gpt-4", second) + "\n"
    assert local_server.requests[-1]["text"] == format_prompt(second)


def test_llm_chat_on_stdin_keeps_the_conversation(cli, local_server):
    result = cli("chat", "-m", "myshell/gpt-4", input="first\nsecond\nquit\n")
    first = echo("gpt-4", [user("first")])
    second = echo("gpt-4", [user("first"), assistant(first), user("second")])
    assert f"> {first}\n" in result.stdout
    assert f"> {second}\n" in result.stdout
    assert [r["text"] for r in local_server.requests] == [
        "first",
        format_prompt([user("first"), assistant(first), user("second")]),
    ]


def test_llm_key_based_api_with_its_key_options_and_history(cli, local_server):
    missing = cli("-m", "myshell/gpt-4o", "hi", check=False)
    assert missing.returncode == 1
    assert "llm keys set myshell-openapi" in missing.stderr and "MYSHELL_API_KEY" in missing.stderr
    cli("keys", "set", "myshell-openapi", "--value", LOCAL_API_KEY)
    out = cli("-m", "myshell/gpt-4o", "-s", "Be brief", "-o", "temperature", "0.2", "-o", "max_tokens", "50", "hi")
    assert out.stdout == openapi_reply("gpt-4o", "hi", 0, True) + "\n"
    sent = local_server.openapi_requests[-1]
    assert sent["headers"]["x-myshell-openapi-key"] == LOCAL_API_KEY
    assert sent["input"]["temperature"] == 0.2 and sent["input"]["max_tokens"] == 50
    assert sent["input"]["system_prompt"] == "Be brief"
    again = cli("-c", "again").stdout
    assert again == openapi_reply("gpt-4o", "again", 2, True) + "\n"
    assert local_server.openapi_requests[-1]["input"]["memory"] == [
        user("hi"),
        assistant(openapi_reply("gpt-4o", "hi", 0, True)),
    ]


def test_llm_shows_our_error_and_raises_it_typed_when_asked(tmp_path):
    if not LLM.exists():
        pytest.skip("the llm command is not installed next to this interpreter")
    with LocalMyshellServer(energy=0) as server:
        env = environment(server, tmp_path)
        shown = subprocess.run(
            [str(LLM), "-m", "myshell/gpt-4", "hi"], capture_output=True, text=True, env=env, timeout=120
        )
        raised = subprocess.run(
            [str(LLM), "-m", "myshell/gpt-4", "hi"],
            capture_output=True,
            text=True,
            env={**env, "LLM_RAISE_ERRORS": "1"},
            timeout=120,
        )
    assert shown.returncode == 1 and shown.stderr.startswith("Error: no_enough_energy")
    assert raised.returncode == 1
    assert "myshell_sync.InsufficientEnergyError: no_enough_energy" in raised.stderr


# ---------------------------------------------------------------------------
# The Python API


def test_get_model_prompt_streams_and_answers_whole(api, local_server):
    model = api.get_model("myshell/gpt-4")
    assert model.can_stream
    response = model.prompt(POEM)
    chunks = list(response)
    assert "".join(chunks) == echo("gpt-4", [user(POEM)]) and len(chunks) > 3
    assert response.response_json["req_id"] == local_server.requests[-1]["reqId"]
    assert model.prompt("hi", stream=False).text() == "gpt-4: hi"
    assert api.get_model("myshell-http/assistant").prompt("hi").text() == "assistant: hi"


def test_a_conversation_sends_the_system_prompt_and_every_earlier_turn(api, local_server):
    conversation = api.get_model("myshell/gpt-4").conversation()
    first = conversation.prompt("one", system="Be brief").text()
    system = {"role": "system", "content": "Be brief"}
    assert first == echo("gpt-4", [system, user("one")])
    second = conversation.prompt("two").text()
    sent = [system, user("one"), assistant(first), user("two")]
    assert second == echo("gpt-4", sent)
    assert local_server.requests[-1]["text"] == format_prompt(sent)


def test_the_key_based_api_takes_the_generation_settings(api, local_server, monkeypatch):
    model = api.get_model("myshell/gpt-4o-mini")  # the alias
    assert model.model_id == "myshell-openapi/gpt-4o-mini"
    reply = model.prompt("hi", system="Be brief", temperature=0.5, top_p=0.9, key=LOCAL_API_KEY).text()
    assert reply == openapi_reply("gpt-4o-mini", "hi", 0, True)
    sent = local_server.openapi_requests[-1]["input"]
    assert (sent["temperature"], sent["top_p"]) == (0.5, 0.9) and "max_tokens" not in sent
    with pytest.raises(api.NeedsKeyException, match="llm keys set myshell-openapi"):
        model.prompt("hi").text()
    with monkeypatch.context() as patched:  # the environment variable we already read
        patched.setenv("MYSHELL_API_KEY", LOCAL_API_KEY)
        assert model.prompt("hi").text() == openapi_reply("gpt-4o-mini", "hi", 0, False)
    # the other transports have no settings: llm refuses the option itself, nothing is sent
    with pytest.raises(Exception, match="temperature"):
        api.get_model("myshell/gpt-4").prompt("hi", temperature=0.5)
    assert local_server.requests == []


def test_a_token_comes_from_the_key_the_keys_file_or_the_environment(api, tmp_path, monkeypatch):
    with LocalMyshellServer(tokens={"token-1"}) as server:
        monkeypatch.setenv("MYSHELL_BASE_URL", server.base_url)
        model = api.get_model("myshell/gpt-4")
        with pytest.raises(AuthenticationError):
            model.prompt("hi").text()
        assert model.prompt("hi", key="token-1").text() == "gpt-4: hi"
        (tmp_path / "keys.json").write_text(json.dumps({"myshell": "token-1"}))
        assert api.get_model("myshell/gpt-4").prompt("hi").text() == "gpt-4: hi"
        (tmp_path / "keys.json").unlink()
        monkeypatch.setenv("MYSHELL_TOKEN", "token-1")
        assert api.get_model("myshell/gpt-4").prompt("hi").text() == "gpt-4: hi"
        assert [auth.get("token") for auth in server.auths][-1] == "token-1"
        llm_plugin.close_clients()


def test_our_errors_reach_the_python_api_typed(api, monkeypatch):
    with LocalMyshellServer(energy=0) as server:
        monkeypatch.setenv("MYSHELL_BASE_URL", server.base_url)
        with pytest.raises(InsufficientEnergyError):
            api.get_model("myshell/gpt-4").prompt("hi").text()
        llm_plugin.close_clients()
