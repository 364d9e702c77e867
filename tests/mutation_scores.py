"""Print the mutation scores of the last ``mutmut run``, one line per module.

    mutmut run && python tests/mutation_scores.py

Reads mutmut's results under ``mutants/`` (RELIABILITY.md, "Mutation testing").
``--survivors`` also lists the mutants that survived, as ``mutmut show`` names them.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

# A timeout counts as a kill (the mutant made a test hang), as mutmut's own score does.
KILLED = ("killed", "timeout", "caught by type check")


def main(argv: list) -> int:
    metas = sorted(Path("mutants").rglob("*.py.meta"))
    if not metas:
        print("no results under mutants/: run `mutmut run` first", file=sys.stderr)
        return 1
    print("| module | mutants | killed | survived | no test | kill rate |")
    print("|---|---|---|---|---|---|")
    survivors = []
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        status = {name: status_by_exit_code[code] for name, code in codes.items()}
        counts = collections.Counter(
            "killed" if kind in KILLED else kind if kind in ("survived", "no tests") else "other"
            for kind in status.values()
        )
        survivors += sorted(name for name, kind in status.items() if kind == "survived")
        module = str(meta.relative_to("mutants"))[: -len(".meta")]
        total = len(codes)
        rate = 100.0 * counts["killed"] / total if total else 100.0
        other = f" (+{counts['other']} not run)" if counts["other"] else ""
        print(
            f"| `{module}` | {total} | {counts['killed']} | {counts['survived']} | {counts['no tests']}{other} "
            f"| {rate:.1f}% |"
        )
    if "--survivors" in argv:
        print()
        print("\n".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
