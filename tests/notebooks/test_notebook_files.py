"""The committed notebooks: each `.ipynb` is its `py:percent` file (jupytext pairing), has no
outputs, and has a `parameters` cell whose names the command line can set."""

from __future__ import annotations

import jupytext  # type: ignore[import-untyped]
import nbformat
import pytest

from notebooks.dataset import DataSet
from notebooks.execute import NOTEBOOKS, SOURCE_DIR, inject, parameter_names, read_source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_pair_is_in_sync_and_stripped(name: str) -> None:
    paired = nbformat.read(SOURCE_DIR / f"{name}.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    source = jupytext.read(SOURCE_DIR / f"{name}.py", fmt="py:percent")
    assert [c.cell_type for c in paired.cells] == [c.cell_type for c in source.cells]
    assert [c.source for c in paired.cells] == [c.source for c in source.cells], (
        f"run `jupytext --sync notebooks/{name}.py` (or --update --to ipynb)"
    )
    for cell in paired.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert paired.metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_can_be_injected(name: str) -> None:
    notebook = read_source(name)
    names = parameter_names(notebook)
    assert "output_dir" in names
    data_names = set(DataSet().parameters()) | {"since", "until", "bucket", "output_dir"}
    wanted = {
        "failure_analysis": {"database_url", "events_path", "since", "until"},
        "sentry_analysis": {"sentry_paths", "since", "until"},
        "reliability_report": {"chaos_summary", "load_dir", "tests_path"},
    }[name]
    assert wanted <= set(names) & data_names
    injected = inject(notebook, {"output_dir": "/tmp/x", "unknown": 1})
    cell = next(c for c in injected.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert cell.source.splitlines()[1:] == ["output_dir = '/tmp/x'"]
