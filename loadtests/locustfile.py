"""The Locust entry point: `locust -f loadtests/locustfile.py --host URL [OPTIONS]`.

User classes: `PublicVisitor`, `Admin`, `Importer`, `HealthProbe` (see `users.py`); one load
shape, `LoadShape` (`--shape steady|ramp|outage`, see `shapes.py`); the thresholds are
checked when Locust quits (see `hooks.py`). Admins and importers send the admin token from
the `LOADTEST_ADMIN_TOKEN` environment variable. `locust -f loadtests/locustfile.py --help`
lists every option; docs/load.md explains them.
"""

from __future__ import annotations

# Locust imports this file by path; `loadtests` is an installed package (pyproject.toml), so
# these imports work from any working directory.
from loadtests import hooks  # (registers the event listeners)
from loadtests.shapes import LoadShape
from loadtests.users import Admin, HealthProbe, Importer, PublicVisitor

__all__ = ["Admin", "HealthProbe", "Importer", "LoadShape", "PublicVisitor", "hooks"]
