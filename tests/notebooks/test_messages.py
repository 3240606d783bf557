"""Messages with their numbers, ids and URLs taken out; patterns counted (and scaled)."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from notebooks.reliability.messages import message_patterns, normalise_message


def test_examples() -> None:
    assert normalise_message(
        "Image not found (404) for https://cf.geekdo-images.com/pic12_t.jpg"
    ) == ("Image not found (<n>) for <url>")
    assert normalise_message("CDN answered 503") == "CDN answered <n>"
    assert normalise_message("timeout after 12.5 s talking to 10.0.0.7:443") == (
        "timeout after <n> s talking to <ip>"
    )
    assert (
        normalise_message("record 3f2a9c1e-1111-4222-8333-444455556666 lost")
        == "record <uuid> lost"
    )
    assert normalise_message("Refused content type 'text/html'") == "Refused content type <str>"
    assert normalise_message(None) == ""


@given(number=st.integers(0, 10**9), other=st.integers(0, 10**9))
def test_numbers_do_not_split_a_pattern(number: int, other: int) -> None:
    assert normalise_message(f"game {number} failed after {other} ms") == normalise_message(
        "game 1 failed after 2 ms"
    )


@given(text=st.text(max_size=80))
def test_normalising_is_idempotent(text: str) -> None:
    once = normalise_message(text)
    assert normalise_message(once) == once


def test_patterns_group_and_scale() -> None:
    groups = pd.DataFrame(
        {
            "error_type": ["ImageNotFound", "ImageNotFound", "ReadTimeout", None],
            "error_message": ["missing pic1", "missing pic2", "timed out", "x"],
            "failures": [3, 1, 2, 1],
        }
    )
    exact = message_patterns(groups)
    assert exact.iloc[0][["error_type", "pattern", "failures", "distinct_messages"]].tolist() == [
        "ImageNotFound",
        "missing pic<n>",
        4,
        2,
    ]
    assert exact["share"].sum() == 1.0
    assert not exact["estimated"].any()
    sampled = message_patterns(groups, fraction=0.1)
    assert sampled["failures"].tolist() == [40, 20, 10]
    assert sampled["estimated"].all()
    assert message_patterns(groups.iloc[0:0]).empty
