"""Error messages with their variable parts taken out, so that messages of one cause group.

`Image not found: https://cdn/pic123_t.jpg (game 42)` and `Image not found:
https://cdn/pic7_t.jpg (game 9)` are one pattern, `Image not found: <url> (game <n>)`.
URLs, e-mail addresses, UUIDs, hex ids, IP addresses, quoted strings and numbers are
replaced, in that order, and runs of white space collapsed.
"""

from __future__ import annotations

import re

import pandas as pd

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>()]+", re.IGNORECASE), "<url>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "<email>"),
    (
        re.compile(
            r"\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b", re.IGNORECASE
        ),
        "<uuid>",
    ),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"0x[0-9a-f]+", re.IGNORECASE), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\d+(?:[.,]\d+)*"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise_message(message: str | None) -> str:
    """`message` with URLs, ids and numbers replaced by placeholders (empty for None)."""
    if message is None:
        return ""
    text = str(message)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text.strip()


def message_patterns(
    groups: pd.DataFrame, *, fraction: float = 1.0, limit: int = 15
) -> pd.DataFrame:
    """The most frequent normalised messages.

    `groups` has `error_type`, `error_message`, `failures` (rows per distinct message, as
    `TaskTables.message_groups` returns). When the groups were counted on a sample,
    `fraction` is the sampled share and the counts are scaled up (`estimated` is then True).
    Returns `error_type`, `pattern`, `failures`, `share`, `distinct_messages`, `example`,
    `estimated`, most frequent first.
    """
    columns = [
        "error_type",
        "pattern",
        "failures",
        "share",
        "distinct_messages",
        "example",
        "estimated",
    ]
    if groups.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns}).astype(
            {
                "failures": "int64",
                "share": "float64",
                "distinct_messages": "int64",
                "estimated": "bool",
            }
        )
    frame = groups.copy()
    frame["error_type"] = frame["error_type"].fillna("(none)").astype(str)
    frame["pattern"] = frame["error_message"].map(normalise_message)
    frame = frame.sort_values("failures", ascending=False, kind="stable")
    grouped = frame.groupby(["error_type", "pattern"], sort=False).agg(
        failures=("failures", "sum"),
        distinct_messages=("error_message", "size"),
        example=("error_message", "first"),
    )
    grouped = grouped.reset_index()
    scale = 1.0 / fraction if 0 < fraction < 1 else 1.0
    grouped["failures"] = (grouped["failures"] * scale).round().astype("int64")
    total = grouped["failures"].sum()
    grouped["share"] = grouped["failures"] / total if total else 0.0
    grouped["estimated"] = scale != 1.0
    grouped = grouped.sort_values(
        ["failures", "error_type", "pattern"], ascending=[False, True, True], kind="stable"
    )
    return grouped[columns].head(limit).reset_index(drop=True)
