"""The built wheel: the metadata pip and packagers read, and the files it ships.

The wheel is built by setuptools' own PEP 517 backend (what pip calls) in a
subprocess that cannot import websocket-client, requests or urllib3, as in the
isolated build environment of a fresh install: the version must be read
without importing the package.
"""

from __future__ import annotations

import configparser
import email
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from helpers import ROOT

import myshell_sync

pytestmark = pytest.mark.extras

BUILD = r"""
import sys

class BlockRuntimeDependencies:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"websocket", "requests", "urllib3"}:
            raise ImportError(f"{name} is not importable in a build environment")

sys.meta_path.insert(0, BlockRuntimeDependencies())
from setuptools import build_meta

print(build_meta.build_wheel(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} is older than pyproject.toml's build requirement")
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "LICENSE", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "myshell_sync", source / "myshell_sync", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name = result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(out / name) as archive:
        yield archive


def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    (path,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(path))


def test_the_version_is_read_without_importing_the_dependencies(wheel):
    assert metadata(wheel)["Version"] == myshell_sync.__version__


def test_python_versions_claimed_agree_with_each_other(wheel):
    meta = metadata(wheel)
    claimed = [
        classifier.rpartition(":: ")[2]
        for classifier in meta.get_all("Classifier")
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    minors = [int(version.split(".")[1]) for version in claimed]
    assert minors == list(range(minors[0], minors[-1] + 1)), "the classifiers skip a version"
    assert meta["Requires-Python"] == f">=3.{minors[0]}"
    # .ci/run proves every classifier's version; it is not shorter than the one this runs on.
    assert minors[0] <= sys.version_info[1] <= minors[-1]


def test_license_author_and_discovery_metadata(wheel):
    meta = metadata(wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta["License-File"] == "LICENSE"
    assert meta["Author"]
    assert "myshell" in meta["Keywords"]
    assert meta.get_all("Project-URL")
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "License-Expression supersedes them"


def test_runtime_requirements_are_the_two_libraries_and_urllib3(wheel):
    required = [r for r in metadata(wheel).get_all("Requires-Dist") if "extra ==" not in r]
    names = sorted(re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in required)
    assert names == ["requests", "urllib3", "websocket-client"]


def test_the_wheel_ships_the_license_py_typed_and_every_subpackage(wheel):
    names = set(wheel.namelist())
    license_path = next(name for name in names if name.endswith(".dist-info/licenses/LICENSE"))
    assert wheel.read(license_path) == (ROOT / "LICENSE").read_bytes()
    assert "myshell_sync/py.typed" in names
    packages = {str(path.parent.relative_to(ROOT)) for path in (ROOT / "myshell_sync").rglob("__init__.py")}
    shipped = {name.rpartition("/")[0] for name in names if name.endswith("/__init__.py")}
    assert shipped == packages
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "examples/"))]


def test_the_console_script_and_the_extras_the_docs_name(wheel):
    (path,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(path).decode())
    assert entry_points["console_scripts"]["myshell-sync"] == "myshell_sync._cli:main"
    extras = set(metadata(wheel).get_all("Provides-Extra"))
    assert {"local", "socks", "notebook", "docs", "test", "test-core"} <= extras
    notebook = [r for r in metadata(wheel).get_all("Requires-Dist") if 'extra == "notebook"' in r]
    assert any(r.startswith("jupyterlab") for r in notebook) and any(r.startswith("ipykernel") for r in notebook)
