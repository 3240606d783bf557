"""Storage: ORM models, the engine factory, migrations and repositories. Knows no HTTP."""
