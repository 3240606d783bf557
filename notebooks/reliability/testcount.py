"""How many tests the project has, and how the last run went.

Three sources, best first:

- a JUnit XML report (`pytest --junitxml=reports/tests/junit.xml`): tests, passed, failed,
  errors, skipped, per area;
- `tests.json`, which `python -m notebooks` writes from `pytest --collect-only -q`;
- the text of `pytest --collect-only -q` itself (one node id per line, then
  `N tests collected`).

Only a JUnit report says whether the tests pass; a collection counts them. The area of a test
is the folder under `tests/` (`tests/api/test_x.py` -> `api`; `tests/test_cli.py` -> `(top)`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pandas as pd

from notebooks.reliability.errors import InputError

_COLLECTED = re.compile(r"(\d+)\s+tests?\s+collected|collected\s+(\d+)\s+items?")
_ERRORS = re.compile(r"(\d+)\s+errors?")


@dataclass(frozen=True)
class TestCount:
    """Tests counted from one source."""

    __test__ = False  # not a pytest test class, despite the name

    source: str  # "junit", "collect-only"
    collected: int
    by_area: dict[str, int]
    passed: int | None = None
    failed: int | None = None
    errors: int | None = None
    skipped: int | None = None
    duration_s: float | None = None

    @property
    def all_passed(self) -> bool | None:
        """Whether the run had no failure and no error (None when only collected)."""
        if self.failed is None or self.errors is None:
            return None
        return self.failed == 0 and self.errors == 0 and self.collected > 0

    def areas(self) -> pd.DataFrame:
        """Tests per area, most first: `area`, `tests`."""
        ordered = sorted(self.by_area.items(), key=lambda kv: (-kv[1], kv[0]))
        frame = pd.DataFrame({"area": [a for a, _ in ordered], "tests": [n for _, n in ordered]})
        return frame.astype({"tests": "int64"})

    def to_json(self) -> dict[str, Any]:
        """As written to `tests.json`."""
        return {
            "source": self.source,
            "collected": self.collected,
            "by_area": self.by_area,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "duration_s": self.duration_s,
        }


def area_of(node_id: str) -> str:
    """`tests/api/test_x.py::test_y[sqlite]` -> `api`; `tests/test_cli.py::t` -> `(top)`."""
    path = node_id.split("::", 1)[0].replace("\\", "/")
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "tests":
        parts = parts[1:]
    return parts[0] if len(parts) > 1 else "(top)"


def parse_collect_only(text: str) -> TestCount:
    """The output of `pytest --collect-only -q`; `InputError` when it is not one."""
    ids = [line.strip() for line in text.splitlines() if "::" in line and " " not in line.strip()]
    match = None
    for line in reversed(text.splitlines()):
        match = _COLLECTED.search(line)
        if match:
            errors = _ERRORS.search(line)
            break
    if match is None and not ids:
        raise InputError(
            "not the output of `pytest --collect-only -q`: no node ids and no 'N tests collected'"
        )
    collected = int(match.group(1) or match.group(2)) if match else len(ids)
    by_area = dict(Counter(area_of(i) for i in ids))
    return TestCount(
        source="collect-only",
        collected=collected,
        by_area=by_area,
        errors=int(errors.group(1)) if match and errors else None,
    )


def load_junit(path: str | Path) -> TestCount:
    """A JUnit XML report (pytest's `--junitxml`)."""
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314 - a report this project wrote
    except ElementTree.ParseError as exc:
        raise InputError(f"{path} is not a JUnit XML report: {exc}") from None
    cases = list(root.iter("testcase"))
    if root.tag not in ("testsuites", "testsuite"):
        raise InputError(f"{path} is not a JUnit XML report: root <{root.tag}>")
    areas: Counter[str] = Counter()
    passed = failed = errors = skipped = 0
    for case in cases:
        classname = case.get("classname", "")
        file = case.get("file") or classname.replace(".", "/") + ".py"
        areas[area_of(file if "/" in file else "tests/" + file)] += 1
        if case.find("failure") is not None:
            failed += 1
        elif case.find("error") is not None:
            errors += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    duration = sum(float(s.get("time", 0) or 0) for s in root.iter("testsuite")) or None
    return TestCount(
        source="junit",
        collected=len(cases),
        by_area=dict(areas),
        passed=passed,
        failed=failed,
        errors=errors,
        skipped=skipped,
        duration_s=duration,
    )


def load_tests(path: str | Path) -> TestCount:
    """A test count from a JUnit XML report, a `tests.json`, or saved collect-only output."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (expected a JUnit XML report or tests.json)")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise InputError(f"{path} is empty: expected a JUnit XML report or tests.json")
    if path.suffix.lower() == ".xml" or text.lstrip().startswith("<"):
        return load_junit(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not JSON ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("collected"), int):
            raise InputError(f"{path} is not a tests.json: expected a `collected` count")
        return TestCount(
            source=str(data.get("source") or "collect-only"),
            collected=data["collected"],
            by_area={str(k): int(v) for k, v in (data.get("by_area") or {}).items()},
            passed=data.get("passed"),
            failed=data.get("failed"),
            errors=data.get("errors"),
            skipped=data.get("skipped"),
            duration_s=data.get("duration_s"),
        )
    return parse_collect_only(text)
