"""Background tasks (thumbnail downloads), their runner, and failure recording."""
