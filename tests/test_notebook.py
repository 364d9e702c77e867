"""examples/notebook.ipynb, executed by nbclient in a real ipykernel that runs
this interpreter, against the local server it starts (MYSHELL_LOCAL=1)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from myshell_sync.local import reply_chunks

pytestmark = pytest.mark.extras  # not a core test (see conftest.py)
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nbclient import NotebookClient  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
KERNEL = "myshell-sync-test"


class RecordingClient(NotebookClient):
    """Counts the kernel's messages per cell, by type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: dict[int, Counter] = {}

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.setdefault(cell_index, Counter())[msg["msg_type"]] += 1
        return super().process_message(msg, cell, cell_index)


@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A kernelspec that runs sys.executable with MYSHELL_LOCAL=1, found via JUPYTER_PATH."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "myshell_sync tests",
        "language": "python",
        "env": {"MYSHELL_LOCAL": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable
    return KERNEL


def test_notebook_streams_into_one_output_and_runs_a_thread_pool(kernel_name, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = RecordingClient(nb, kernel_name=kernel_name, timeout=60, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    for _, cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs

    (_, setup), (stream_index, stream_cell), (_, pool_cell), _ = code
    assert "talking to http://127.0.0.1:" in setup.outputs[0].text

    # One output, redrawn once per chunk, ending with the whole reply.
    prompt = "Write a haiku about streaming replies"
    assert len(stream_cell.outputs) == 1
    assert stream_cell.outputs[0].output_type == "display_data"
    assert stream_cell.outputs[0].data["text/markdown"] == f"gpt-4: {prompt}"
    updates = client.messages[stream_index]["update_display_data"]
    assert updates == len(reply_chunks("gpt-4", prompt))

    printed = "".join(o.text for o in pool_cell.outputs if o.output_type == "stream")
    assert printed.splitlines() == [
        "Name a prime number -> gpt-4: Name a prime number",
        "What is the capital of France? -> gpt-4: What is the capital of France?",
        "Say hello in Spanish -> gpt-4: Say hello in Spanish",
    ]
