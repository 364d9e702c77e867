"""The documentation: the mkdocs site builds cleanly, and its runnable code blocks run.

The site (``mkdocs.yml``, pages under ``docs/``) is built with
``mkdocs build --strict`` into a temporary folder: any warning fails.

Runnable code blocks (in ``README.md`` and every page under ``docs/``): a
fenced block runs when the line just before its opening fence is the HTML
comment ``<!-- runnable -->`` (invisible on the rendered page and on a code
host):

- a ``python`` block runs as a script in a fresh interpreter (this one),
  from the repository's top folder, with this checkout first on
  ``PYTHONPATH``; it must exit 0 within ``BLOCK_TIMEOUT`` seconds. Runnable
  blocks start their own ``LocalMyshellServer``, so they run offline and
  exactly as a reader would copy them. A block that imports a library the
  test extra installs only on newer Pythons (``llm`` on 3.9) is skipped
  where that library is missing.
- a ``console`` block holds ``$ command`` lines, each followed by the output
  it prints; each command runs in ``bash`` from the top folder, with this
  interpreter's scripts folder first on ``PATH`` (so ``myshell-sync`` is the
  one installed here), and must exit 0 printing that output.
- a ``text`` block whose opening fence follows ``<!-- output -->`` is the
  expected stdout of the runnable ``python`` block just before it.

Outputs are compared line by line, ignoring trailing whitespace and
trailing blank lines; ``...`` in an expected line matches any text (a
request id, timings). ``MYSHELL_*`` and proxy variables of the caller's
environment are removed, so a developer's token or API key cannot change
what a block does.
"""

from __future__ import annotations

import configparser
import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

import myshell_sync

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
RUNNABLE = "<!-- runnable -->"
OUTPUT = "<!-- output -->"
BLOCK_TIMEOUT = 30  # seconds, for one block or one console command
BUILD_TIMEOUT = 120


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


@dataclass
class Block:
    """One fenced code block that carries a marker."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str
    code: str
    expected: str | None = None  # a runnable python block's <!-- output --> block

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse_blocks(path: Path) -> tuple[list[Block], list[str]]:
    """The marked blocks of ``path`` (output blocks attached to their python
    block), and the problems found with the markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    previous: Block | None = None  # the last fenced block, marked or not
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped.startswith("```"):
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            if stripped in (RUNNABLE, OUTPUT) and not following.startswith("```"):
                problems.append(f"{path.name}:{index + 1}: {stripped} is not on the line before a fence")
            index += 1
            continue
        start, lang = index, stripped[3:].strip()
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        marker = lines[start - 1].strip() if start > 0 else ""
        block = Block(path, start + 1, lang, marker, "\n".join(body) + "\n")
        where = f"{path.relative_to(ROOT)}:{start + 1}"
        if marker == RUNNABLE:
            if lang not in ("python", "console"):
                problems.append(f"{where}: a runnable block must be python or console, not {lang!r}")
            blocks.append(block)
        elif marker == OUTPUT:
            if lang != "text":
                problems.append(f"{where}: an output block must be a text block, not {lang!r}")
            elif previous is None or previous.marker != RUNNABLE or previous.lang != "python":
                problems.append(f"{where}: an output block must follow a runnable python block")
            elif previous.expected is not None:
                problems.append(f"{where}: a second output block for one python block")
            else:
                previous.expected = block.code
        previous = block
    return blocks, problems


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in parse_blocks(path)[0]]


@functools.cache
def setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


@functools.cache
def libraries_not_for_this_python() -> frozenset[str]:
    """The import names of the test extra's libraries whose marker excludes this
    Python (``llm; python_version >= "3.10"`` on 3.9) and that nothing else installed."""
    from packaging.requirements import Requirement

    names = set()
    for line in setup_cfg()["options.extras_require"]["test"].splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            name = requirement.name.lower().replace("-", "_")
            if requirement.marker is not None and not requirement.marker.evaluate() and not find_spec(name):
                names.add(name)
    return frozenset(names)


def imported_modules(code: str) -> set[str]:
    """The top-level modules a block imports."""
    return set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", code, re.MULTILINE))


def block_env() -> dict[str, str]:
    """The caller's environment without MYSHELL_* and proxy variables, with
    this checkout first on PYTHONPATH and this interpreter's scripts on PATH."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("MYSHELL_") and not name.lower().endswith("_proxy")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return env


def output_matches(expected: str, actual: str) -> bool:
    """Line by line, trailing whitespace ignored; ``...`` matches any text."""

    def lines(text: str) -> list[str]:
        result = [line.rstrip() for line in text.splitlines()]
        while result and not result[-1]:
            result.pop()
        return result

    wanted, got = lines(expected), lines(actual)
    if len(wanted) != len(got):
        return False
    for pattern, line in zip(wanted, got):
        regex = ".*?".join(re.escape(part) for part in pattern.split("..."))
        if not re.fullmatch(regex, line):
            return False
    return True


def console_steps(code: str) -> list[tuple[str, str]]:
    """``[(command, expected output)]`` of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in code.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"console block output before any '$ ' command: {line!r}"
            steps[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in steps]


# ---------------------------------------------------------------------------
# the markers


def test_the_markers_are_well_formed():
    problems = [problem for path in doc_files() for problem in parse_blocks(path)[1]]
    assert not problems, "\n".join(problems)


def test_the_important_pages_have_runnable_blocks():
    pages = {block.path.relative_to(ROOT).as_posix() for block in all_blocks()}
    for page in (
        "README.md",
        "docs/quickstart.md",
        "docs/conversations.md",
        "docs/errors.md",
        "docs/timeouts.md",
        "docs/key-api.md",
        "docs/install.md",
        "docs/cli.md",
    ):
        assert page in pages, f"{page} has no runnable block"


def test_the_readme_quickstart_is_runnable_and_shows_its_output():
    blocks = parse_blocks(README)[0]
    python = [block for block in blocks if block.lang == "python"]
    assert python and python[0].expected, "the README's example must be runnable, with its output"
    assert any(block.lang == "console" for block in blocks), "the offline demo must be runnable"


# ---------------------------------------------------------------------------
# the blocks


@pytest.mark.parametrize("block", all_blocks(), ids=lambda block: block.name)
def test_runnable_block(block: Block, tmp_path: Path):
    if block.lang == "python":
        lacking = imported_modules(block.code) & libraries_not_for_this_python()
        if lacking:
            pytest.skip(f"{block.name} uses {', '.join(sorted(lacking))}: the test extra has it on newer Pythons")
        script = tmp_path / "block.py"
        script.write_text(block.code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)],
            check=False,
            cwd=ROOT,
            env=block_env(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"{block.name} failed:\n{result.stderr}"
        if block.expected is not None:
            assert output_matches(block.expected, result.stdout), (
                f"{block.name} printed:\n{result.stdout}\nthe page says:\n{block.expected}"
            )
        return
    for command, expected in console_steps(block.code):
        result = subprocess.run(
            ["bash", "-c", command],
            check=False,
            cwd=ROOT,
            env=block_env(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"{block.name}: {command!r} failed:\n{result.stderr}"
        assert output_matches(expected, result.stdout), (
            f"{block.name}: {command!r} printed:\n{result.stdout}\nthe page says:\n{expected}"
        )


def test_output_matching():
    assert output_matches("a ... c\n\n", "a b b c  \n")
    assert output_matches('{"id": "..."}', '{"id": "1-2"}')
    assert not output_matches("a ... c", "a b d")
    assert not output_matches("one", "one\ntwo")


# ---------------------------------------------------------------------------
# the site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        check=False,
        cwd=ROOT,
        env=block_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_the_site_builds_strictly(site: Path):
    for page in DOCS.glob("*.md"):
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"
    reliability = (site / "reliability" / "index.html").read_text(encoding="utf-8")
    assert "fuzz" in reliability  # RELIABILITY.md was included


def test_the_api_reference_has_every_public_name(site: Path):
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    missing = [name for name in myshell_sync.__all__ if f'id="myshell_sync.{name}"' not in reference]
    assert not missing, f"not in the API reference: {missing}"
    assert 'id="myshell_sync.local.LocalMyshellServer"' in reference


# ---------------------------------------------------------------------------
# what the docs say about the project


def test_the_module_map_names_every_module():
    table = (DOCS / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "myshell_sync").rglob("*.py"))
    missing = [module for module in modules if f"`{module}`" not in table]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_every_install_line_works_from_a_clone():
    """Each extra named as ``".[extra]"`` exists in setup.cfg, and no shell
    block installs ``myshell_sync`` by name (it is not on a package index)."""
    extras = set(setup_cfg()["options.extras_require"])
    for path in doc_files():
        shell = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                shell = line.strip() in ("```bash", "```console")
                continue
            for group in re.findall(r'"\.\[([^\]]+)\]"', line):
                for extra in group.split(","):
                    assert extra.strip() in extras, f"{path.name}:{number}: no extra {extra!r} in setup.cfg"
            if shell and "pip install" in line:
                assert "myshell_sync" not in line, f"{path.name}:{number}: install from the clone: {line}"


def test_the_readme_is_short_and_its_test_command_is_pytest():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 120
    marker = next(i for i, line in enumerate(lines) if line.startswith("Test command"))
    fence = lines.index("```bash", marker)
    assert lines[fence + 1 : fence + 3] == ["pytest", "```"], "the README's test command must be exactly pytest"
    top = next(i for i, line in enumerate(lines) if line.startswith("## More"))
    assert top <= 50, "the README's top (before its links) must fit on one screen"
