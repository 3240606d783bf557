"""What the journals' experiments name for Chaos Toolkit: synchronous, JSON-argument functions.

The harness runs each activity itself: a coroutine of `chaos.scenarios` awaited with the
harness's in-process `Context` (the fakes' fault engines and request logs, the public-API
sampler, the alert receiver, the service processes it started). Chaos Toolkit can supply
none of that and never awaits a coroutine, so a journal cannot name those coroutines as
`python` providers: chaoslib's validation refuses them (the `ctx` argument is missing).

So each declared activity names `harness_activity` with JSON arguments saying which
scenario, which activity and which coroutine it is. That is a true description of what ran,
and one chaoslib validates; it is not one Chaos Toolkit can run: called by Chaos Toolkit,
`harness_activity` does nothing but fail, saying where the experiment does run
(`python -m chaos run <scenario>`; with Chaos Toolkit, `experiments/<scenario>.json`
against `python -m chaos stack`, for the scenarios that have one).

A tolerance Chaos Toolkit cannot judge with its own built-in types alone (a bool or a string
on one key of the output: a `jsonpath`, which needs the optional `jsonpath2`) is a `probe`
tolerance naming `tolerance_met`, which judges with the harness's own `Tolerance`.
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn, cast

from chaos.core import Tolerance


class HarnessOnly(RuntimeError):
    """A harness activity was called from outside the harness (by Chaos Toolkit)."""


def harness_activity(scenario: str, activity: str, coroutine: str) -> NoReturn:
    """The activity `activity` of `scenario`, which the harness ran as `coroutine`.

    Only the harness can run it (with its in-process context); called from anywhere else,
    this raises `HarnessOnly`, which Chaos Toolkit records as a failed activity.
    """
    raise HarnessOnly(
        f"{scenario}: {activity!r} is the harness's coroutine {coroutine}, which needs the "
        f"harness's in-process context: run it with `python -m chaos run {scenario}` (with "
        f"Chaos Toolkit: experiments/{scenario}.json against `python -m chaos stack`, where "
        "the repository has that file)"
    )


def tolerance_met(
    kind: str, expected: Any = None, path: str | None = None, value: Any = None
) -> bool:
    """Whether `value` (a probe's output, which Chaos Toolkit passes in) meets the tolerance
    `kind` / `expected` / `path` (see `chaos.core.Tolerance`), judged as the harness does."""
    if kind not in ("equals", "at_most", "at_least", "true"):
        raise ValueError(f"unknown tolerance kind {kind!r}")
    chosen = cast(Literal["equals", "at_most", "at_least", "true"], kind)
    return Tolerance(chosen, expected, path).met(value)
