"""Fixtures of the API tests that need a PostgreSQL database of their own."""

from __future__ import annotations

import pytest

from tests.conftest import PostgresDatabases


@pytest.fixture
def own_postgres(postgres_databases: PostgresDatabases) -> str:
    """A migrated PostgreSQL database for this test alone (it gets triggers, its backends get
    terminated, its connections refused)."""
    return postgres_databases.create(migrated=True)
