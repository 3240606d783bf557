"""mutmut's verdicts as a per-module score table and a list of surviving mutants.

Reads what `mutmut results --all true` prints (one `NAME: STATUS` line per mutant) rather
than mutmut's state files, so the report keeps working when mutmut changes how it stores
them. Mutants listed in `mutation/equivalent.toml` (name -> one-line reason) are counted
apart and never reported as survivors.
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EQUIVALENT_FILE = Path(__file__).with_name("equivalent.toml")

#: mutmut's statuses, grouped the way the score reads them. A timeout counts as caught, as in
#: mutmut's own badge: the tests noticed the mutant, by hanging where they should have ended.
CAUGHT = ("killed", "timeout")
MISSED = ("survived",)
# Every other status (no tests, not checked, suspicious, segfault, ...) stays out of the score:
# no test ran against the mutant, or the run ended in a way that says nothing about the tests.


def parse_results(text: str) -> dict[str, str]:
    """Mutant name -> status, from the output of `mutmut results --all true`."""
    statuses: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            statuses[name] = status
    return statuses


def module_of(mutant: str) -> str:
    """`system.resilience.breaker` for `system.resilience.breaker.xǁBreakerǁcall__mutmut_3`."""
    parts = mutant.split(".")
    for i, part in enumerate(parts):
        # mutmut names a mangled function x_NAME, a mangled method xǁCLASSǁNAME
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i])
    raise ValueError(f"not a mutmut mutant name: {mutant}")


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """The mutants judged equivalent to the original: name -> why no test can tell them apart."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    table = data.get("equivalent", {})
    bad = [name for name, reason in table.items() if not isinstance(reason, str) or not reason]
    if bad:
        raise ValueError(f"{path}: each [equivalent] entry needs a one-line reason: {bad}")
    return dict(table)


@dataclass
class ModuleScore:
    """How one module's mutants fared."""

    module: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def reachable(self) -> int:
        """Mutants some test ran against, equivalent ones left out."""
        return sum(self.counts[s] for s in (*CAUGHT, *MISSED))

    @property
    def score(self) -> float | None:
        """Percentage of reachable mutants caught (killed or timed out); None if none ran."""
        if not self.reachable:
            return None
        return 100 * sum(self.counts[s] for s in CAUGHT) / self.reachable


@dataclass
class Report:
    """Scores per module, the survivors with their diffs, and what the equivalence list says."""

    modules: list[ModuleScore]
    survivors: dict[str, str]
    equivalent: dict[str, str]
    #: Entries of the equivalence list that name no mutant any more, or one that tests kill
    #: (mutmut numbers mutants by position in their function, so an edit can move a name).
    stale_equivalent: list[str]

    @property
    def total(self) -> ModuleScore:
        """All modules together."""
        total = ModuleScore("total")
        for module in self.modules:
            total.counts.update(module.counts)
        return total


def build(
    statuses: Mapping[str, str], equivalent: Mapping[str, str], diff: Callable[[str], str]
) -> Report:
    """Score `statuses` per module; `diff(name)` gives a survivor's diff (`mutmut show`)."""
    modules: dict[str, ModuleScore] = {}
    survivors: dict[str, str] = {}
    for name, status in sorted(statuses.items()):
        module = modules.setdefault(module_of(name), ModuleScore(module_of(name)))
        if name in equivalent and status in MISSED:
            module.counts["equivalent"] += 1
            continue
        module.counts[status] += 1
        if status in MISSED:
            survivors[name] = diff(name)
    # Not stale: a listed mutant not run yet (a subset run) is simply not counted this time.
    stale = sorted(n for n in equivalent if n not in statuses or statuses[n] in CAUGHT)
    used = {n: r for n, r in equivalent.items() if statuses.get(n) in MISSED}
    return Report(sorted(modules.values(), key=lambda m: m.module), survivors, used, stale)


COLUMNS = ("killed", "timeout", "survived", "no tests", "equivalent", "not checked")


def _percent(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}%"


def _rows(report: Report) -> Iterable[list[str]]:
    for m in [*report.modules, report.total]:
        other = sum(m.counts.values()) - sum(m.counts[c] for c in COLUMNS)
        yield [m.module, *(str(m.counts[c]) for c in COLUMNS), str(other), _percent(m.score)]


def summary(report: Report) -> str:
    """The score table as fixed-width text, for the end of the run."""
    head = ["module", *COLUMNS, "other", "score"]
    rows = [head, *_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.append(f"{len(report.survivors)} surviving mutants (equivalent ones left out)")
    if report.stale_equivalent:
        lines.append(
            f"stale entries in {EQUIVALENT_FILE.name}: {', '.join(report.stale_equivalent)}"
        )
    return "\n".join(lines)


def markdown(report: Report, command: str) -> str:
    """The whole report: score table, survivors with their diffs, equivalent mutants."""
    head = ["module", *COLUMNS, "other", "score"]
    out = [
        "# Mutation testing",
        "",
        f"`{command}`. Score: killed or timed out, out of the mutants some test ran against "
        "(no tests, not checked, equivalent and `other` left out). `other`: suspicious, "
        "skipped, segfault (mutmut's names).",
        "",
        (
            "Each mutant ran against every test that reaches its function."
            if "--all-tests" in command.split()
            else "Each mutant ran against the tests that reach its function and own its file "
            "(`mutation/owners.toml`); `--all-tests` runs all of them."
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in _rows(report)),
        "",
        f"## Surviving mutants ({len(report.survivors)})",
        "",
    ]
    for name, diff in report.survivors.items():
        out += [f"### `{name}`", "", "```diff", diff.rstrip(), "```", ""]
    out += [f"## Equivalent mutants ({len(report.equivalent)})", ""]
    out += [f"- `{name}`: {reason}" for name, reason in sorted(report.equivalent.items())]
    if report.stale_equivalent:
        out += [
            "",
            "Stale entries (no longer a surviving mutant): "
            + ", ".join(f"`{n}`" for n in report.stale_equivalent),
        ]
    return "\n".join(out) + "\n"


def as_json(report: Report, command: str) -> dict[str, Any]:
    """The report as data: counts and score per module, survivors with diffs."""
    return {
        "command": command,
        "modules": {m.module: {**m.counts, "score": m.score} for m in report.modules},
        "total": {**report.total.counts, "score": report.total.score},
        "survivors": report.survivors,
        "equivalent": report.equivalent,
        "stale_equivalent": report.stale_equivalent,
    }


def write(report: Report, folder: Path, command: str) -> list[Path]:
    """Write report.md and report.json into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "report.md", folder / "report.json"
    md.write_text(markdown(report, command), encoding="utf-8")
    js.write_text(
        json.dumps(as_json(report, command), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return [md, js]
