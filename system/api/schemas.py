"""API schemas (apart from the ORM models in `system/db/models.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from system.clock import isoformat_z

#: Every timestamp the API returns: ISO-8601, UTC, with a `Z`.
UTCTimestamp = Annotated[datetime, PlainSerializer(isoformat_z, return_type=str)]


class Game(BaseModel):
    """A game in the catalogue."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    bgg_id: int
    title: str
    year_published: int | None
    min_players: int | None
    max_players: int | None
    playing_time: int | None
    min_age: int | None
    description: str | None
    thumbnail_url: str | None
    image_url: str | None
    thumbnail_path: str | None
    average_rating: float | None
    bayes_average: float | None
    bgg_rank: int | None
    categories: list[str]
    mechanics: list[str]
    designers: list[str]
    publishers: list[str]
    is_expansion: bool
    created_at: UTCTimestamp
    updated_at: UTCTimestamp


class GamePage(BaseModel):
    """One page of the catalogue."""

    items: list[Game]
    total: int
    limit: int
    offset: int
