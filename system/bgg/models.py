"""Typed data the BGG client returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: Column sizes of the catalogue (`system/db/models.py` uses these): the parser never hands
#: over a longer title (it is cut) or image URL (it is dropped), so no value of BGG's can
#: fail the insert on a database that enforces VARCHAR lengths (PostgreSQL).
TITLE_MAX_LENGTH: Final = 500
URL_MAX_LENGTH: Final = 512


@dataclass(frozen=True, slots=True)
class BggGame:
    """One board game (or expansion) as BGG's XML API2 `thing` endpoint describes it."""

    bgg_id: int
    title: str
    year_published: int | None = None
    min_players: int | None = None
    max_players: int | None = None
    playing_time: int | None = None
    min_age: int | None = None
    description: str | None = None
    thumbnail_url: str | None = None
    image_url: str | None = None
    average_rating: float | None = None
    bayes_average: float | None = None
    bgg_rank: int | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)
    mechanics: tuple[str, ...] = field(default_factory=tuple)
    designers: tuple[str, ...] = field(default_factory=tuple)
    publishers: tuple[str, ...] = field(default_factory=tuple)
    is_expansion: bool = False
