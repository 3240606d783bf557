"""Building blocks of the harness's command lines: `python -m chaos`, `chaos.fakes`,
`chaos.proxy`, `loadtests` and `notebooks` all use them.

`Parser` reports bad input as one line on stderr and exit code 2, never a usage block or a
traceback. The checks raise `argparse.ArgumentTypeError`, which argparse prints as
`PROG: error: argument --FLAG: MESSAGE`. Each command keeps its own wording (users and tests
read it), so the messages are templates, formatted with `text` (what was given), `value` (the
parsed number), `low` and `high`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
N = TypeVar("N", int, float)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are `PROG: error: MESSAGE` on one line and exit code 2.

    `error_hint` is added after every message (e.g. `" (see --help)"`); sub-command parsers
    get none.
    """

    def __init__(self, *args: Any, error_hint: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_hint = error_hint

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2 (argparse's default adds the whole usage first)."""
        self.exit(2, f"{self.prog}: error: {message}{self.error_hint}\n")


def _bounded(
    convert: Callable[[str], N], low: N, high: N, include_low: bool, invalid: str, bounds: str
) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                invalid.format(text=text, low=low, high=high)
            ) from None
        # Written so that NaN fails it: every comparison with NaN is false.
        if not ((low <= value if include_low else low < value) and value <= high):
            raise argparse.ArgumentTypeError(
                bounds.format(text=text, value=value, low=low, high=high)
            )
        return value

    return parse


def bounded_int(
    low: int,
    high: int,
    *,
    invalid: str = "not a whole number: {text!r}",
    out_of_range: str = "must be {low}-{high}, got {value}",
) -> Callable[[str], int]:
    """A check of a whole number from `low` to `high` (both included)."""
    return _bounded(int, low, high, True, invalid, out_of_range)


def port(
    low: int = 0,
    *,
    invalid: str = "invalid port {text!r}",
    out_of_range: str = "port out of range: {value}",
) -> Callable[[str], int]:
    """A check of a TCP port from `low` (0: the command binds any free port) to 65535."""
    return _bounded(int, low, 65535, True, invalid, out_of_range)


def bounded_float(
    low: float,
    high: float,
    *,
    include_low: bool = False,
    invalid: str = "not a number: {text!r}",
    out_of_range: str = "must be in ({low:g}, {high:g}], got {text}",
) -> Callable[[str], float]:
    """A check of a number above `low` (or from it, with `include_low`) up to `high`."""
    return _bounded(float, low, high, include_low, invalid, out_of_range)


def http_url(text: str) -> str:
    """An http(s) URL with a host, without its trailing slash."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text.rstrip("/")


def checked(check: Callable[[str], T]) -> Callable[[str], T]:
    """`check` (which raises ValueError) as an argparse type that prints its message.

    argparse turns a bare ValueError into `invalid <function name> value`, losing the reason.
    """

    def parse(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse
