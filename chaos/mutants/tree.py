"""A throw-away copy of the service's source with one mutant applied.

Only `system/` is copied (the service needs nothing else to run: its migrations live in the
package); the real tree is only ever read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from chaos.mutants.catalogue import Mutant


class PatchError(Exception):
    """A catalogue entry no longer applies to the current source (its text moved or changed)."""


def copy_service(repo_root: Path, dest: Path) -> Path:
    """Copy `repo_root/system` to `dest/system`; returns `dest` (the root to run from)."""
    shutil.copytree(
        repo_root / "system",
        dest / "system",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dest


def check_applies(mutant: Mutant, repo_root: Path) -> None:
    """Raise `PatchError` unless every replacement's text is found exactly once.

    Checked against the files as they are, all before any is written, so a half-applied
    mutant never runs.
    """
    if mutant.kind == "code" and not mutant.replacements:
        raise PatchError(f"mutant {mutant.name!r} changes nothing (no replacements)")
    texts: dict[str, str] = {}
    for number, replacement in enumerate(mutant.replacements, start=1):
        path = repo_root / replacement.path
        if replacement.path not in texts:
            try:
                texts[replacement.path] = path.read_text()
            except OSError as exc:
                raise PatchError(
                    f"mutant {mutant.name!r}: {replacement.path}: {exc.strerror}"
                ) from None
        text = texts[replacement.path]
        found = text.count(replacement.old)
        if found != 1:
            where = "not found" if found == 0 else f"found {found} times"
            raise PatchError(
                f"mutant {mutant.name!r} no longer applies: replacement {number} in "
                f"{replacement.path}: its text is {where}"
            )
        texts[replacement.path] = text.replace(replacement.old, replacement.new)


def apply(mutant: Mutant, root: Path) -> None:
    """Apply `mutant`'s replacements to the copy under `root` (`PatchError` if one fails)."""
    check_applies(mutant, root)
    for replacement in mutant.replacements:
        path = root / replacement.path
        path.write_text(path.read_text().replace(replacement.old, replacement.new))


def mutated_copy(mutant: Mutant, repo_root: Path, dest: Path) -> Path:
    """`repo_root`'s `system/` copied to `dest` with `mutant` applied; returns `dest`."""
    root = copy_service(repo_root, dest)
    apply(mutant, root)
    return root
