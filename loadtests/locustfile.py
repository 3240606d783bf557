"""The Locust entry point: `locust -f loadtests/locustfile.py --host URL [OPTIONS]`.

User classes: `PublicVisitor`, `Admin`, `Importer`, `HealthProbe` (see `users.py`); one load
shape, `LoadShape` (`--shape steady|ramp|outage`, see `shapes.py`); the thresholds are
checked when Locust quits (see `hooks.py`). Admins and importers send the admin token from
the `LOADTEST_ADMIN_TOKEN` environment variable. `locust -f loadtests/locustfile.py --help`
lists every option; docs/load.md explains them.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Locust imports this file by path; make `loadtests` importable from any working directory.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from loadtests import hooks  # noqa: E402  (registers the event listeners)
from loadtests.shapes import LoadShape  # noqa: E402
from loadtests.users import Admin, HealthProbe, Importer, PublicVisitor  # noqa: E402

__all__ = ["Admin", "HealthProbe", "Importer", "LoadShape", "PublicVisitor", "hooks"]
