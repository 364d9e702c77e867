"""Stream a reply from a MyShell bot, chunk by chunk.

python examples/quickstart.py                 # the real service
python examples/quickstart.py --local         # an embedded local server (pip install ".[local]")
python examples/quickstart.py -m gpt-3.5-turbo "Tell me a joke"
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from myshell_sync import Myshell, MyshellError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="Write a poem about love")
    parser.add_argument("-m", "--model", default="gpt-4")
    parser.add_argument("--local", action="store_true", help="talk to an embedded local server")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        if args.local:
            from myshell_sync.local import LocalMyshellServer

            server = stack.enter_context(LocalMyshellServer(chunk_delay=0.05))
            client = stack.enter_context(Myshell(server.base_url, captcha_delay=0))
        else:
            client = stack.enter_context(Myshell())
        messages = [{"role": "user", "content": args.prompt}]
        try:
            for chunk in client.generate(args.model, messages):
                print(chunk, end="", flush=True)
        except MyshellError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            return 1
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
