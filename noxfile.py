"""The project's sessions: ``nox -l`` lists them, CONTRIBUTING.md says when to run which.

``nox`` alone runs lint, types, docs and the tests on the Python that runs nox.
CI (``.ci/run``) runs the README's ``pytest``, then ``nox -s lint types``, the
``core`` session on every other supported Python, and ``tests`` on the oldest one
with ``-- -m extras`` (the tests ``core`` leaves out).

The supported Pythons are setup.cfg's ``Programming Language :: Python :: 3.X``
classifiers: one list, which packaging, this file and CI all read.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

# The tools' versions, pinned so that a contributor and CI check with the same ones
# (ruff's pin is in .pre-commit-config.yaml, which the lint session runs).
MYPY = "mypy==2.4.1"
MUTMUT = "mutmut==3.8.1"
PRE_COMMIT = "pre-commit>=4"

# A claimed Python that is missing fails the run: claim only what CI proves.
nox.options.error_on_missing_interpreters = True


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def supported_pythons() -> list[str]:
    """The X.Y of every ``Programming Language :: Python :: X.Y`` classifier, oldest first."""
    versions = []
    for line in _setup_cfg()["metadata"]["classifiers"].splitlines():
        match = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", line.strip())
        if match:
            versions.append(match.group(1))
    return sorted(versions, key=lambda version: tuple(map(int, version.split("."))))


def lowest_constraints() -> list[str]:
    """Each runtime requirement's lower bound as a pin: ``websocket-client>=1.6,<2`` gives ``websocket-client==1.6``."""
    pins = []
    for line in _setup_cfg()["options"]["install_requires"].splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*>=\s*([^,;\s]+)\s*(,.*)?", line)
        if match is None:
            raise SystemExit(f"setup.cfg: no lower bound (>=) in the runtime requirement {line!r}")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


def _runs(command: str) -> bool:
    try:
        return subprocess.run([command, "-c", ""], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _find_pyenv_builds(versions: list[str]) -> None:
    """Put the newest pyenv build of each X.Y on PATH where ``pythonX.Y`` does not run.

    pyenv's shims answer ``pythonX.Y`` only for the versions its settings enable; nox looks
    for ``pythonX.Y`` on PATH, so a build under ``$PYENV_ROOT/versions`` is put there.
    """
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for version in versions:
        command = f"python{version}"
        if shutil.which(command) and _runs(command):
            continue
        builds = sorted(
            glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", command)),
            key=lambda path: [int(part) for part in re.findall(r"\d+", Path(path).parent.parent.name)],
        )
        if builds:
            os.environ["PATH"] = os.path.dirname(builds[-1]) + os.pathsep + os.environ["PATH"]


PYTHONS = supported_pythons()
OLDEST = PYTHONS[0]
CURRENT = "%d.%d" % sys.version_info[:2]
_find_pyenv_builds(PYTHONS)

nox.options.sessions = ["lint", "types", "docs"] + ([f"tests-{CURRENT}"] if CURRENT in PYTHONS else [])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The README's test command, ``pytest``, with every test extra; arguments go to pytest."""
    session.install("-e", ".[test]")
    if shutil.which("npm"):
        # The official openai npm package, for the Node conformance test (skipped without node).
        session.run("npm", "install", "--prefix", "tests/node", "--no-audit", "--no-fund", "--silent", external=True)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS, venv_backend="venv")
def core(session: nox.Session) -> None:
    """What CI checks on each Python but the default one.

    A stock virtualenv (the Python's own pip, not upgraded) runs ``pip install .`` and
    ``myshell-sync --help``; then the core tests, ``pytest -m "not extras"``, run against
    the installed package. On the oldest supported Python the runtime dependencies are
    pinned to the lowest versions setup.cfg allows.
    """
    session.run("python", "-m", "pip", "--version")
    # Non-editable, from the source tree, as a user would install a clone.
    session.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", ".")
    session.run("myshell-sync", "--help", silent=True)
    session.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
    if session.python == OLDEST:
        constraints = Path(session.create_tmp()) / "lowest.txt"
        pins = lowest_constraints()
        constraints.write_text("\n".join(pins) + "\n")
        session.log(f"lowest runtime versions: {' '.join(pins)}")
        session.install("--quiet", "-c", str(constraints), ".[test-core]")
    else:
        session.install("--quiet", ".[test-core]")
    # The pytest script does not put the working directory on sys.path, so the tests
    # import the installed package, not the source tree; this line shows which one.
    with session.chdir(session.create_tmp()):
        session.run("python", "-c", "import myshell_sync; print('testing', myshell_sync.__file__)")
    session.run("pytest", "-m", "not extras", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and the hygiene hooks, through pre-commit, on every file."""
    session.install(PRE_COMMIT)
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session
def types(session: nox.Session) -> None:
    """``mypy --strict`` on myshell_sync/ (settings in pyproject.toml), with the optional libraries installed."""
    # The extras' libraries that ship types are checked against; the others are listed
    # in pyproject.toml's [[tool.mypy.overrides]].
    session.install("-e", ".[local,socks,server,llm,langchain,litellm]", MYPY, "types-requests")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/; any warning fails (as tests/test_docs.py does)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """mutmut on the pure modules (setup.cfg's [mutmut]), then the scores; arguments go to ``mutmut run``.

    About eight minutes on two CPUs from scratch; ``nox -s mutation -- "myshell_sync._sse*"`` does one module.
    """
    session.install("-e", ".[test-core]", MUTMUT)
    session.run("mutmut", "run", *session.posargs)
    session.run("python", "tests/mutation_scores.py")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks (BENCHMARKS.md); arguments go to ``python -m benchmarks``, e.g. ``-- --quick --no-write``."""
    session.install("-e", ".[bench,local]")
    session.run("python", "-m", "benchmarks", *session.posargs)
