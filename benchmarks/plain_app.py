"""The baseline of `benchmarks.reads`: what a user would write instead of this service.

A plain FastAPI + SQLAlchemy (async) app serving the same `boardgames` table with the same
queries as the service's public reads: one game by id, and a page of 20 ordered by title with
the total count. No readiness, metrics, error mapping, caching or middleware: just the reads.
It never creates or migrates anything; the service's migrations made the table.

    DATABASE_URL=sqlite+aiosqlite:///path.db uvicorn benchmarks.plain_app:create_app --factory
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """The plain app's own declarative base."""


class Game(Base):
    """The `boardgames` table, as a user would map it."""

    __tablename__ = "boardgames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bgg_id: Mapped[int] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(500))
    year_published: Mapped[int | None] = mapped_column(Integer)
    min_players: Mapped[int | None] = mapped_column(Integer)
    max_players: Mapped[int | None] = mapped_column(Integer)
    playing_time: Mapped[int | None] = mapped_column(Integer)
    min_age: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(String(2048))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    thumbnail_path: Mapped[str | None] = mapped_column(String(512))
    average_rating: Mapped[float | None] = mapped_column(Float)
    bayes_average: Mapped[float | None] = mapped_column(Float)
    bgg_rank: Mapped[int | None] = mapped_column(Integer)
    categories: Mapped[list[str]] = mapped_column(JSONType)
    mechanics: Mapped[list[str]] = mapped_column(JSONType)
    designers: Mapped[list[str]] = mapped_column(JSONType)
    publishers: Mapped[list[str]] = mapped_column(JSONType)
    is_expansion: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class GameOut(BaseModel):
    """A game as the API shows it (the same fields as the service's, path left out)."""

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
    average_rating: float | None
    bayes_average: float | None
    bgg_rank: int | None
    categories: list[str]
    mechanics: list[str]
    designers: list[str]
    publishers: list[str]
    is_expansion: bool
    created_at: datetime
    updated_at: datetime


class GamePageOut(BaseModel):
    """One page of games and how many there are."""

    items: list[GameOut]
    total: int
    limit: int
    offset: int


def create_app(database_url: str | None = None) -> FastAPI:
    """The app on `database_url` (default: the `DATABASE_URL` environment variable)."""
    url = database_url or os.environ["DATABASE_URL"]
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as s:
            yield s

    Session = Annotated[AsyncSession, Depends(session)]
    app = FastAPI(lifespan=lifespan)

    @app.get("/api/public/games/{game_id}")
    async def get_game(game_id: int, s: Session) -> GameOut:
        game = await s.get(Game, game_id)
        if game is None:
            raise HTTPException(404, "Game not found")
        return GameOut.model_validate(game)

    @app.get("/api/public/games")
    async def list_games(
        s: Session,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> GamePageOut:
        total = await s.scalar(select(func.count()).select_from(Game))
        games = await s.scalars(
            select(Game).order_by(Game.title, Game.id).limit(limit).offset(offset)
        )
        return GamePageOut(
            items=[GameOut.model_validate(g) for g in games],
            total=total or 0,
            limit=limit,
            offset=offset,
        )

    return app
