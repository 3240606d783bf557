"""Running notebooks headless: parameters injected, failures named, figures embedded; and the
committed `.ipynb` opened as `jupyter lab notebooks/` would (kernel in notebooks/)."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from notebooks.execute import SOURCE_DIR, CellError, html_of, inject, run

NOTEBOOK = """# %%
from notebooks.reliability.errors import InputError

# %% tags=["parameters"]
mode = "ok"

# %%
value = 1
if mode == "crash":
    value = 1 // 0
if mode == "bad input":
    raise InputError("x.csv is empty: expected a header")
print(value)
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(NOTEBOOK, "utf-8")
    return path


@pytest.mark.slow
def test_a_failing_cell_is_named_and_the_notebook_still_written(
    source: Path, tmp_path: Path
) -> None:
    with pytest.raises(CellError) as caught:
        run(source, {"mode": "crash"}, tmp_path / "out", timeout=60)
    message = str(caught.value)
    assert message.startswith("tiny.ipynb: cell 4 (`value = 1`) failed: ZeroDivisionError")
    assert "\n" not in message
    assert not caught.value.input_error
    written = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    assert any(o.get("output_type") == "error" for c in written.cells for o in c.get("outputs", []))
    assert (tmp_path / "out" / "tiny.html").is_file()
    with pytest.raises(CellError) as bad:
        run(source, {"mode": "bad input"}, tmp_path / "out", timeout=60)
    assert bad.value.input_error
    assert "InputError: x.csv is empty: expected a header" in str(bad.value)


@pytest.mark.slow
def test_the_committed_notebook_runs_from_the_notebooks_folder(tmp_path: Path) -> None:
    """As `jupyter lab notebooks/` runs it: the stock python3 kernel, cwd notebooks/, no
    PYTHONPATH; relative paths point into the repository."""
    notebook = nbformat.read(SOURCE_DIR / "sentry_analysis.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    notebook = inject(notebook, {"sentry_paths": ["fixtures/sentry"], "output_dir": str(tmp_path)})
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(SOURCE_DIR)}},
    )
    import asyncio

    asyncio.run(client.async_execute())
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5
    assert base64.b64decode(images[0]["data"]["image/png"]).startswith(b"\x89PNG")
    assert "data:image/png;base64," in html_of(notebook)
    assert (tmp_path / "sentry_top_issues.csv").is_file()
