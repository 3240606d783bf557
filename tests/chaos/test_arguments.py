"""The harness's shared command-line blocks (`chaos.arguments`); each command's own wording is
pinned by its CLI tests (test_chaos_cli, test_server, loadtests/test_cli, notebooks/test_cli)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from chaos.arguments import Parser, bounded_float, bounded_int, checked, http_url, port


def test_an_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = Parser(prog="tool", error_hint=" (see --help)")
    parser.add_argument("--n", type=bounded_int(1, 3))
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--n", "4"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "tool: error: argument --n: must be 1-3, got 4 (see --help)\n"


@pytest.mark.parametrize(
    ("check", "text", "message"),
    [
        (port(), "x", "invalid port 'x'"),
        (port(), "65536", "port out of range: 65536"),
        (port(1, out_of_range="{low}..{high} not {text!r}"), "0", "1..65535 not '0'"),
        (bounded_float(0, 1), "nan", "must be in (0, 1], got nan"),
        (bounded_float(0, 1), "0", "must be in (0, 1], got 0"),
        (bounded_float(0, 1), "one", "not a number: 'one'"),
        (http_url, "ftp://x", "not an http(s) URL: 'ftp://x'"),
        (checked(int), "x", "invalid literal for int() with base 10: 'x'"),
    ],
)
def test_a_bad_value_says_why(check: Callable[[str], object], text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        check(text)
    assert str(raised.value) == message


def test_good_values_pass() -> None:
    assert port()("0") == 0
    assert bounded_float(10, 20, include_low=True)("10") == 10.0
    assert http_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
