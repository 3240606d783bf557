"""Run a notebook headless: parameters injected, every cell executed, `.ipynb` and `.html` out.

The source of each notebook is its `py:percent` file (`notebooks/<name>.py`, paired by
jupytext with the committed, output-free `.ipynb`). Parameters are injected the way papermill
does it: a cell tagged `injected-parameters` right after the cell tagged `parameters`,
assigning the given values (only names the parameters cell defines). The kernel is this very
Python (a kernel spec written for the run), so the notebooks import the same packages as the
command line. A failing cell stops the run with `CellError`, whose message names the notebook,
the cell and the error in one line; the notebook is still written up to that cell.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext  # type: ignore[import-untyped]
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from nbformat import NotebookNode

SOURCE_DIR = Path(__file__).resolve().parent
REPO = SOURCE_DIR.parent
NOTEBOOKS = ("failure_analysis", "sentry_analysis", "reliability_report")
KERNEL_NAME = "bgg-reliability"


class CellError(Exception):
    """A cell failed; `input_error` is True when it failed on bad input (exit 2)."""

    def __init__(self, message: str, *, input_error: bool = False) -> None:
        super().__init__(message)
        self.input_error = input_error


@dataclass(frozen=True)
class Written:
    """The files one run wrote."""

    notebook: Path
    html: Path
    seconds: float


def read_source(name: str | Path) -> NotebookNode:
    """The notebook `name` (one of `NOTEBOOKS`) or at a path, from its `py:percent` file."""
    path = name if isinstance(name, Path) else SOURCE_DIR / f"{name}.py"
    notebook: NotebookNode = jupytext.read(path, fmt="py:percent")
    return notebook


def parameter_names(notebook: NotebookNode) -> list[str]:
    """The names the cell tagged `parameters` assigns."""
    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    raise ValueError("the notebook has no cell tagged 'parameters'")


def inject(notebook: NotebookNode, values: dict[str, Any]) -> NotebookNode:
    """`notebook` with an `injected-parameters` cell after its `parameters` cell."""
    known = parameter_names(notebook)
    lines = ["# Parameters injected by `python -m notebooks`"]
    lines += [f"{name} = {values[name]!r}" for name in known if name in values]
    cell = nbformat.v4.new_code_cell("\n".join(lines))  # type: ignore[no-untyped-call]
    cell.metadata["tags"] = ["injected-parameters"]
    cells = list(notebook.cells)
    index = next(
        i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    )
    cells.insert(index + 1, cell)
    notebook.cells = cells
    return notebook


def _kernel_spec(folder: Path) -> KernelSpecManager:
    """A kernel spec for this interpreter, so the kernel sees what the command line sees."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bgg-reliability",
        "language": "python",
        "env": {"PYTHONPATH": str(REPO), "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(folder / "kernels")])


def _manager_class(folder: Path) -> type[AsyncKernelManager]:
    """A kernel manager class that starts this interpreter's kernel over Unix sockets in
    `folder` (no TCP port opened); nbclient owns its instances, so it stops the kernel and
    closes every socket when the notebook is done."""
    specs = _kernel_spec(folder)

    class Manager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("kernel_spec_manager", specs)
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", str(folder / "kernel"))
            super().__init__(**kwargs)

    return Manager


def _failed_cell(notebook: NotebookNode) -> tuple[int, NotebookNode] | None:
    code = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code += 1
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return code, cell
    return None


def _describe(name: str, notebook: NotebookNode, exc: Exception) -> CellError:
    found = _failed_cell(notebook)
    where = ""
    ename, evalue = (
        type(exc).__name__,
        str(exc).strip().splitlines()[-1] if str(exc).strip() else "",
    )
    if found is not None:
        number, cell = found
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        where = f" cell {number} (`{first.strip()[:60]}`)"
        error = next(o for o in cell.outputs if o.get("output_type") == "error")
        ename, evalue = str(error.get("ename")), str(error.get("evalue"))
    message = f"{name}.ipynb:{where} failed: {ename}: {evalue}".replace("\n", " ")
    return CellError(message, input_error=ename in ("InputError", "MalformedRowError"))


#: The page template: nbconvert's `lab` without the scripts it fetches from a CDN.
TEMPLATES = SOURCE_DIR / "templates"


def html_of(notebook: NotebookNode) -> str:
    """The notebook as a standalone report page: the text and what the cells showed, figures
    embedded; no code and no `In [n]:` prompts (the `.ipynb` keeps the code), no request
    leaving the machine."""
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="report",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    # Code cells that showed nothing would still leave an empty gap on the page.
    shown = copy.deepcopy(notebook)
    shown.cells = [c for c in shown.cells if c.cell_type != "code" or c.get("outputs")]
    body, _resources = exporter.from_notebook_node(shown)
    return str(body)


def run(
    name: str | Path, values: dict[str, Any], output_dir: Path, *, timeout: float = 600.0
) -> Written:
    """Execute notebook `name` (one of `NOTEBOOKS`, or the `py:percent` file at a path) with
    parameter `values`; write `<output>/<name>.ipynb` and `.html`.

    Raises `CellError` when a cell fails (after writing what ran).
    """
    started = time.monotonic()
    notebook = inject(read_source(name), values)
    stem = name.stem if isinstance(name, Path) else name
    notebook.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "bgg-reliability",
        "language": "python",
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    failure: CellError | None = None
    with tempfile.TemporaryDirectory(prefix="nb-kernel-") as folder:
        client = NotebookClient(
            notebook,
            kernel_manager_class=_manager_class(Path(folder)),
            timeout=int(timeout),
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": str(REPO)}},
        )
        try:
            # Our own event loop, closed afterwards: safe in a worker thread, leaks nothing.
            asyncio.run(client.async_execute())
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            failure = _describe(stem, notebook, exc)
    notebook_path = output_dir / f"{stem}.ipynb"
    html_path = output_dir / f"{stem}.html"
    nbformat.write(notebook, notebook_path)  # type: ignore[no-untyped-call]
    html_path.write_text(html_of(notebook), encoding="utf-8")
    if failure is not None:
        raise failure
    return Written(notebook_path, html_path, time.monotonic() - started)
