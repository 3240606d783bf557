"""The load-run options: parsers, precedence of flag / variable / default, round trip."""

from __future__ import annotations

import argparse

import pytest

from loadtests import settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.2-1", "0.2-1"), ("3", "3-3"), (" 0-0 ", "0-0"), ("1.50-2", "1.5-2")],
)
def test_wait_range_accepts_ranges_and_constants(text: str, expected: str) -> None:
    assert settings.wait_range(text) == expected
    assert settings.parse_range(expected) == tuple(float(p) for p in expected.split("-"))


@pytest.mark.parametrize("text", ["3-1", "-1", "a-b", "", "1-4000", "nan", "inf"])
def test_wait_range_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        settings.wait_range(text)


def test_id_range_and_fraction_window() -> None:
    assert settings.parse_id_range(settings.id_range("5-10")) == (5, 10)
    assert settings.id_range("7") == "7-7"
    assert settings.fraction_window("0.25-0.75") == "0.25-0.75"
    for bad in ("0-10", "10-5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            settings.id_range(bad)
    for bad in ("0-0.5", "0.5-1", "0.6-0.4", "0.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            settings.fraction_window(bad)


def test_slo_values_off_auto_and_bounds() -> None:
    assert settings.slo_rate("0.01") == 0.01
    assert settings.slo_rate("off") is None
    assert settings.slo_ms_auto("auto") == "auto"
    assert settings.slo_ms_auto("OFF") is None
    assert settings.slo_ms("250") == 250.0
    bad_values = [
        (settings.slo_rate, "1.5"),
        (settings.slo_rate, "0"),
        (settings.slo_ms, "auto"),
        (settings.slo_ms, "-3"),
        (settings.slo_ratio, "x"),
    ]
    for parse, bad in bad_values:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_resolve_prefers_flag_then_variable_then_default() -> None:
    environ = {"LOADTEST_PUBLIC_WEIGHT": "5", "LOADTEST_ADMIN_WEIGHT": "4"}
    values = settings.resolve({"admin_weight": 2}, environ, defaults={"shape": "outage"})
    assert values["admin_weight"] == 2  # flag
    assert values["public_weight"] == 5  # variable
    assert values["importer_weight"] == 3  # default
    assert values["shape"] == "outage"  # the caller's default
    assert settings.resolve({}, {"LOADTEST_SHAPE": "ramp"}, {"shape": "outage"})["shape"] == "ramp"


def test_resolve_names_the_variable_that_holds_a_bad_value() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="LOADTEST_PUBLIC_WAIT"):
        settings.resolve({}, {"LOADTEST_PUBLIC_WAIT": "slow"})


def test_to_argv_round_trips_through_the_parsers() -> None:
    values = settings.resolve({"slo_public_p95_ms": 123.5, "slo_error_rate": None}, {})
    parser = argparse.ArgumentParser()
    for option in settings.OPTIONS:
        parser.add_argument(option.flag, type=option.parse)
    parsed = vars(parser.parse_args(settings.to_argv(values)))
    assert parsed == values


def test_admin_token_is_needed_only_by_admins_and_importers() -> None:
    values = settings.resolve({}, {})
    assert settings.needs_admin_token(values)
    values.update(admin_weight=0, importer_weight=0)
    assert not settings.needs_admin_token(values)


def test_option_value_falls_back_to_variable_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADTEST_PROBE_WAIT", "0.5")
    assert settings.option_value(None, "probe_wait") == "0.5-0.5"
    assert settings.option_value(argparse.Namespace(probe_wait="1-2"), "probe_wait") == "1-2"
    assert settings.option_value(argparse.Namespace(), "ramp_steps") == 6
