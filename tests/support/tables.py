"""Read a whole table back from a service under test, typed as its model."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select

from system.db.models import BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame

if TYPE_CHECKING:
    from tests.conftest import ServiceUnderTest

#: The tables the tests read back; each has an integer `id`.
Model = TypeVar("Model", BackgroundJob, BackgroundTaskFailure, BackgroundTaskRun, BoardGame)


async def rows(service: ServiceUnderTest, model: type[Model]) -> list[Model]:
    """Every row of `model`'s table, in id order."""
    async with service.services.database.session() as session:
        return list(await session.scalars(select(model).order_by(model.id)))
