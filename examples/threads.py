"""One client shared by a thread pool: several prompts answered concurrently.

    python examples/threads.py --local                        # an embedded local server
    python examples/threads.py -w 4 "one" "two" "three" "four"

A ``Myshell`` client is thread-safe: share one per process. Its pool opens up
to ``max_connections`` WebSocket connections and reuses them, so only the
first request on each connection pays the connect and the captcha delay.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from myshell_sync import Myshell, MyshellError

DEFAULT_PROMPTS = [
    "Name a prime number.",
    "Write a haiku about threads.",
    "What is the capital of France?",
    "Tell me a short joke.",
    "Say hello in Spanish.",
    "Count from one to five.",
]


def ask_all(client: Myshell, model: str | None, prompts: list[str], workers: int) -> list[str]:
    """The replies to ``prompts`` (in order), fetched by ``workers`` threads."""

    def ask(prompt: str) -> str:
        return client.chat(model, [{"role": "user", "content": prompt}]).text

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(ask, prompts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", nargs="*", help="prompts to send (default: six examples)")
    parser.add_argument("-m", "--model", default="gpt-4")
    parser.add_argument("-w", "--workers", type=int, default=3, help="threads (default 3)")
    parser.add_argument("--local", action="store_true", help="talk to an embedded local server")
    args = parser.parse_args(argv)
    prompts = args.prompts or DEFAULT_PROMPTS

    with contextlib.ExitStack() as stack:
        if args.local:
            from myshell_sync.local import LocalMyshellServer

            server = stack.enter_context(LocalMyshellServer(chunk_delay=0.05))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0, max_connections=args.workers))
        else:
            client = stack.enter_context(Myshell(max_connections=args.workers))
        started = time.monotonic()
        try:
            replies = ask_all(client, args.model, prompts, args.workers)
        except MyshellError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for prompt, reply in zip(prompts, replies):
            print(f"{prompt!r} -> {reply}")
        print(
            f"{len(prompts)} replies with {args.workers} threads in {time.monotonic() - started:.2f} s", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
