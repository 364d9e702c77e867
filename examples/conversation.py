"""A multi-turn conversation: each request carries the history so far.

    python examples/conversation.py --local                   # an embedded local server
    python examples/conversation.py "Hi, I'm Ada." "What is my name?"

A ``Conversation`` sends each user turn with every earlier turn and keeps a
turn only once its reply completed; the reply streams to stdout. The local
server's bot answers by echoing the prompt it was sent, so with ``--local``
you can see the history that went out.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from myshell_sync import Myshell, MyshellError

DEFAULT_TURNS = ["Hi! My name is Ada.", "What is my name?", "Thanks, bye!"]


def converse(client: Myshell, model: str | None, turns: list[str], system: str | None = None) -> list[dict[str, str]]:
    """Send ``turns`` one after another, streaming each reply; return the history."""
    conversation = client.conversation(model, system=system)
    for turn in turns:
        print(f"you> {turn}")
        print("bot> ", end="", flush=True)
        for chunk in conversation.send(turn):
            print(chunk, end="", flush=True)
        print("\n")
    return conversation.history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("turns", nargs="*", help="the user's messages, in order")
    parser.add_argument("-m", "--model", default="gpt-4")
    parser.add_argument("-s", "--system", default=None, help="a system message")
    parser.add_argument("--local", action="store_true", help="talk to an embedded local server")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.local:
            from myshell_sync.local import LocalMyshellServer

            server = stack.enter_context(LocalMyshellServer(chunk_delay=0.02))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0))
        else:
            client = stack.enter_context(Myshell())
        try:
            converse(client, args.model, args.turns or DEFAULT_TURNS, args.system)
        except MyshellError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
