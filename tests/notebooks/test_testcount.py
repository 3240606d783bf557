"""Test counts from pytest's collection output, a JUnit report, or tests.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notebooks.reliability.errors import InputError
from notebooks.reliability.testcount import area_of, load_tests, parse_collect_only

COLLECTED = """tests/api/test_health.py::test_live
tests/api/test_health.py::test_ready[sqlite]
tests/bgg/test_parser.py::test_brass
tests/test_cli.py::test_help

4 tests collected in 1.23s
"""


def test_collect_only() -> None:
    count = parse_collect_only(COLLECTED)
    assert count.collected == 4
    assert count.by_area == {"api": 2, "bgg": 1, "(top)": 1}
    assert count.all_passed is None
    assert count.areas()["area"].tolist() == ["api", "(top)", "bgg"]
    with pytest.raises(InputError):
        parse_collect_only("nothing here")


def test_area_of() -> None:
    assert area_of("tests/notebooks/test_x.py::t[a/b]") == "notebooks"
    assert area_of("tests/test_cli.py::t") == "(top)"


def test_junit(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" time="2.5">'
        '<testcase classname="tests.api.test_health" name="test_live" time="0.1"/>'
        '<testcase classname="tests.api.test_health" name="test_ready" time="0.1">'
        '<failure message="boom">x</failure></testcase>'
        '<testcase classname="tests.bgg.test_parser" name="test_x" time="0.1">'
        '<skipped message="no"/></testcase>'
        "</testsuite></testsuites>",
        "utf-8",
    )
    count = load_tests(path)
    assert (count.collected, count.passed, count.failed, count.skipped) == (3, 1, 1, 1)
    assert count.all_passed is False
    assert count.by_area == {"api": 2, "bgg": 1}


def test_tests_json_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "tests.json"
    path.write_text(json.dumps(parse_collect_only(COLLECTED).to_json()), "utf-8")
    assert load_tests(path).collected == 4
    saved = tmp_path / "collect.txt"
    saved.write_text(COLLECTED, "utf-8")
    assert load_tests(saved).by_area["api"] == 2
    (tmp_path / "bad.json").write_text("{}", "utf-8")
    with pytest.raises(InputError, match=r"not a tests\.json"):
        load_tests(tmp_path / "bad.json")
    with pytest.raises(InputError, match="no such file"):
        load_tests(tmp_path / "none.xml")
