"""``python -m benchmarks.openai_serve``: the OpenAI-compatible server's price.

Against one local MyShell server (this process, no chunk delay):
- time to first chunk and whole-call time of ``client.generate()`` called
  directly, and of the official ``openai`` SDK streaming through
  ``myshell-sync serve`` (its own process), warm, interleaved, same run;
- 64 concurrent streams through ``serve``: every reply checked, p50/p99 time
  to first chunk and the wall time.

Prints numbers; asserts only that every reply is right.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from myshell_sync import Myshell, format_prompt
from myshell_sync.local import LocalMyshellServer, reply_chunks

MODEL = "gpt-4"


def messages(index: int) -> List[dict]:
    return [{"role": "user", "content": f"Write a poem about love, number {index}"}]


def expected(index: int) -> str:
    return "".join(reply_chunks(MODEL, format_prompt(messages(index))))


def timed(call: Callable[[], Tuple[float, str]]) -> Tuple[float, float, str]:
    started = time.perf_counter()
    first, text = call()
    return first - started, time.perf_counter() - started, text


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_serve(base_url: str, threads: int) -> Tuple[subprocess.Popen, str]:
    cli = Path(sys.executable).parent / "myshell-sync"
    process = subprocess.Popen(
        [str(cli), "serve", "--base-url", base_url, "--captcha-delay", "0", "--transport", "websocket",
         "--port", "0", "--threads", str(threads)],
        stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise SystemExit(f"serve did not start: {line!r}")
    return process, line.split(" at ", 1)[1].split()[0]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="warm calls per client (default 200)")
    parser.add_argument("--concurrent", type=int, default=64, help="concurrent streams (default 64)")
    args = parser.parse_args(argv)
    import openai

    with LocalMyshellServer() as local:
        process, base = start_serve(local.base_url, threads=max(16, args.concurrent))
        try:
            with Myshell(local.base_url, captcha_delay=0, max_connections=args.concurrent) as direct, \
                    openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=60) as sdk:

                def call_direct(index: int) -> Tuple[float, str]:
                    chunks = direct.generate(MODEL, messages(index))
                    first_chunk = next(chunks)
                    first = time.perf_counter()
                    return first, first_chunk + "".join(chunks)

                def call_served(index: int) -> Tuple[float, str]:
                    stream = sdk.chat.completions.create(model=MODEL, messages=messages(index), stream=True)
                    parts, first = [], 0.0
                    for chunk in stream:
                        if chunk.choices and chunk.choices[0].delta.content:
                            if not parts:
                                first = time.perf_counter()
                            parts.append(chunk.choices[0].delta.content)
                    return first, "".join(parts)

                results = {"generate()": ([], []), "openai SDK via serve": ([], [])}
                for warm in range(5):  # connections and pools open
                    call_direct(warm), call_served(warm)
                for index in range(args.calls):
                    for name, call in (("generate()", call_direct), ("openai SDK via serve", call_served)):
                        first, total, text = timed(lambda: call(index))
                        assert text == expected(index), (name, text)
                        results[name][0].append(first)
                        results[name][1].append(total)
                print(f"warm calls, {args.calls} each, interleaved; median (p99) in ms")
                for name, (firsts, totals) in results.items():
                    print(f"  {name:<22} first chunk {statistics.median(firsts) * 1e3:7.2f} "
                          f"({percentile(firsts, 99) * 1e3:.2f})   whole call {statistics.median(totals) * 1e3:7.2f}")
                ratio = statistics.median(results["openai SDK via serve"][0]) / statistics.median(results["generate()"][0])
                print(f"  first chunk through serve / generate(): {ratio:.2f}x")

                firsts: List[float] = [0.0] * args.concurrent
                errors: List[str] = []
                barrier = threading.Barrier(args.concurrent)

                def one(index: int) -> None:
                    barrier.wait()
                    try:
                        first, _, text = timed(lambda: call_served(1000 + index))
                        firsts[index] = first
                        if text != expected(1000 + index):
                            errors.append(f"stream {index}: wrong reply")
                    except Exception as exc:  # counted and printed
                        errors.append(f"stream {index}: {exc!r}")

                threads = [threading.Thread(target=one, args=(i,)) for i in range(args.concurrent)]
                started = time.perf_counter()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                wall = time.perf_counter() - started
                print(f"{args.concurrent} concurrent streams through serve: {args.concurrent - len(errors)} right, "
                      f"{len(errors)} failed; first chunk p50 {percentile(firsts, 50) * 1e3:.1f} ms, "
                      f"p99 {percentile(firsts, 99) * 1e3:.1f} ms; all done in {wall * 1e3:.0f} ms")
                for error in errors[:5]:
                    print("  ", error)
                return 1 if errors else 0
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
