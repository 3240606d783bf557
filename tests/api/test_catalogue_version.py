"""The catalogue version: a 304 (and a repeated read) costs no game read, and no write, by
any path or process, leaves a worker answering from what it rendered before.

Real app on both backends. "Another process" is a second app on the same database: its own
engine, pool, version reader and cache, so the only thing the two share is the database,
as two `serve` workers or a `python -m system worker` do.
"""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from system.api import caching
from system.clock import utcnow
from system.db.catalogue import VersionReader
from system.db.engine import create_engine
from system.db.models import BoardGame
from tests.api.served import statements
from tests.conftest import ADMIN_TOKEN, ServiceFactory, ServiceUnderTest

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LIST = "/api/public/games"


async def _seed(service: ServiceUnderTest, *titles: str) -> list[int]:
    async with service.services.database.session() as session:
        games = [BoardGame(bgg_id=900 + n, title=t) for n, t in enumerate(titles)]
        session.add_all(games)
        await session.flush()
        return [g.id for g in games]


async def _revalidate(client: httpx.AsyncClient, path: str, etag: str) -> httpx.Response:
    answer = await client.get(path, headers={"If-None-Match": etag})
    assert answer.status_code == 200, f"{path}: {answer.status_code} after a write (stale)"
    assert answer.headers["ETag"] != etag
    return answer


async def test_a_304_and_a_repeated_read_read_no_game(service: ServiceUnderTest) -> None:
    (game_id,) = await _seed(service, "Brass")
    client = service.client
    paths = [f"/api/public/games/{game_id}", LIST, f"{LIST}?limit=5&sort=-year"]
    first = {path: await client.get(path) for path in paths}
    with statements(service.app) as sent:
        for path, answer in first.items():
            again = await client.get(path, headers={"If-None-Match": answer.headers["ETag"]})
            assert again.status_code == 304
            assert (await client.get(path)).content == answer.content
            head = await client.head(path)
            assert head.headers["Content-Length"] == str(len(answer.content))
    # SQLite reads the version on a connection of its own, PostgreSQL on the engine's.
    assert not [s for s in sent if "boardgames" in s], sent


async def test_no_stale_answer_after_a_write_by_any_path_or_process(
    make_service: ServiceFactory,
) -> None:
    """The API worker caches a game and pages; then each kind of write happens, the last
    ones in another process, and every revalidation with the old tag gets the new body."""
    async with (
        make_service(background_workers_in_process=False) as api,
        make_service(background_workers_in_process=False) as other,
    ):
        client = api.client
        (kept,) = await _seed(api, "Agricola")
        detail = f"/api/public/games/{kept}"
        tags = {path: (await client.get(path)).headers["ETag"] for path in (LIST, detail)}

        # 1. An import through this worker's API (its thumbnail job waits: no pool here).
        imported = await api.import_game(28720)
        assert imported.status_code == 201
        page = await _revalidate(client, LIST, tags[LIST])
        assert page.json()["total"] == 2
        tags[LIST] = page.headers["ETag"]
        brass = f"/api/public/games/{imported.json()['id']}"
        before = await client.get(brass)
        assert before.json()["has_thumbnail"] is False

        # 2. A bulk import: this worker queues the job, the other process's pool runs it,
        # and 3. the thumbnail jobs (an UPDATE of a game shown).
        queued = await client.post("/api/admin/games/import", json={"bgg_ids": [13]}, headers=AUTH)
        assert queued.status_code == 202, queued.text
        assert (await client.get(LIST, headers={"If-None-Match": tags[LIST]})).status_code == 304
        other.services.pool.start()
        await other.services.settle()
        page = await _revalidate(client, LIST, tags[LIST])
        assert page.json()["total"] == 3
        tags[LIST] = page.headers["ETag"]
        assert (await _revalidate(client, brass, before.headers["ETag"])).json()["has_thumbnail"]
        (landed,) = [g for g in page.json()["items"] if g["bgg_id"] == 13]
        one = f"/api/public/games/{landed['id']}"
        assert (await client.get(one)).status_code == 200

        # 4. A delete through the other process's API.
        gone = await other.client.delete(f"/api/admin/games/{landed['id']}", headers=AUTH)
        assert gone.status_code == 204
        assert (await client.get(one, headers={"If-None-Match": "*"})).status_code == 404
        page = await _revalidate(client, LIST, tags[LIST])
        assert page.json()["total"] == 2
        tags[LIST] = page.headers["ETag"]

        # 5. An UPDATE on a connection of its own, outside the service (stamping
        # `updated_at`, as every writer must: README, "Caching of the public reads").
        engine = create_engine(api.settings.database_url.get_secret_value())
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    update(BoardGame)
                    .where(BoardGame.id == kept)
                    .values(title="Agricola (revised)", updated_at=utcnow())
                )
        finally:
            await engine.dispose()
        revised = await _revalidate(client, detail, tags[detail])
        assert revised.json()["title"] == "Agricola (revised)"
        page = await _revalidate(client, LIST, tags[LIST])
        assert "Agricola (revised)" in [g["title"] for g in page.json()["items"]]

        # Nothing written since: both answer 304 from what the worker holds.
        for path, answer in ((LIST, page), (detail, revised)):
            again = await client.get(path, headers={"If-None-Match": answer.headers["ETag"]})
            assert again.status_code == 304


async def test_the_version_changes_with_the_writing_transaction(
    service: ServiceUnderTest,
) -> None:
    """Bumped in the writer's transaction: not before its commit, and not by a rollback."""
    database = service.services.database
    reader = database.catalogue_version
    start = await reader.read_now()
    async with database.sessionmaker() as session:
        session.add(BoardGame(bgg_id=1, title="Uncommitted"))
        await session.flush()
        if database.engine.dialect.name != "sqlite":  # SQLite: the writer holds the lock
            assert await reader.read_now() == start
        await session.rollback()
    assert await reader.read_now() == start
    await _seed(service, "Committed")
    assert await reader.read_now() > start


class _GatedReader(VersionReader):
    """The real read, held at a gate, to place callers while one read is in flight."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, sqlite_in_loop=False)
        self.gate = asyncio.Event()
        self.reads = 0

    async def read_now(self) -> int:
        self.reads += 1
        await self.gate.wait()
        return await super().read_now()


async def test_a_caller_never_takes_a_read_begun_before_it(service: ServiceUnderTest) -> None:
    reader = _GatedReader(service.services.database.engine)
    early = [asyncio.create_task(reader.current()) for _ in range(5)]
    while not reader.reads:  # until the shared read has begun (it waits at the gate)
        await asyncio.sleep(0)
    (game_id,) = await _seed(service, "Written while the first read is in flight")
    assert game_id
    late = [asyncio.create_task(reader.current()) for _ in range(5)]
    reader.gate.set()
    first = {await t for t in early}
    second = {await t for t in late}
    assert reader.reads == 2, "one read per batch of callers"
    assert len(first) == 1 and len(second) == 1
    # The early read began before the write: it may show either; the late one must show it.
    assert second.pop() == await reader.read_now()


def test_the_cache_keeps_within_its_bounds() -> None:
    cache = caching.RepresentationCache(max_entries=3, max_bytes=10)
    for n in range(5):
        cache.put(n, caching.Representation(1, b"abc", str(n)))
    assert [n for n in range(5) if cache.get(n, 1)] == [2, 3, 4]
    cache.put(5, caching.Representation(1, b"0123456789", "big"))
    assert [n for n in range(6) if cache.get(n, 1)] == [5]
    assert cache.get(5, 2) is None, "another version is a miss"
    cache.put(5, caching.Representation(0, b"", "older"))
    assert cache.get(5, 1) is not None, "an older rendering never replaces a newer one"


async def test_answers_from_memory_are_counted_under_their_route(
    service: ServiceUnderTest,
) -> None:
    (game_id,) = await _seed(service, "Brass")
    client = service.client
    for path in (f"/api/public/games/{game_id}", f"{LIST}?limit=5"):
        first = await client.get(path)
        await client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        await client.get(path)
    metrics = (await client.get("/metrics")).text
    for route in ("/api/public/games/{game_id}", "/api/public/games"):
        for status, count in (("200", 2), ("304", 1)):
            line = f'http_requests_total{{method="GET",route="{route}",status="{status}"}}'
            assert f"{line} {count:.1f}" in metrics, (line, metrics)


async def test_with_the_cache_off_every_read_reads_its_rows_and_answers_the_same(
    make_service: ServiceFactory,
) -> None:
    """`READ_CACHE_ENTRIES=0`: each read, a 304 and a HEAD included, reads the games (the
    path of the first read after a write), and answers what the cached worker answers."""
    async with make_service() as cached, make_service(read_cache_entries=0) as uncached:
        (game_id,) = await _seed(cached, "Brass")
        paths = [f"/api/public/games/{game_id}", LIST, f"{LIST}?limit=5&sort=-year"]
        for path in paths:
            await cached.client.get(path)
            remembered = await cached.client.get(path)  # answered from memory
            for _ in range(2):
                with statements(uncached.app) as sent:
                    answer = await uncached.client.get(path)
                assert [s for s in sent if "boardgames" in s], f"{path}: no game read"
                assert answer.content == remembered.content
                for header in ("ETag", "Cache-Control", "Last-Modified", "Content-Type"):
                    assert answer.headers.get(header) == remembered.headers.get(header), header
            etag = remembered.headers["ETag"]
            with statements(uncached.app) as sent:
                again = await uncached.client.get(path, headers={"If-None-Match": etag})
                head = await uncached.client.head(path)
            assert again.status_code == 304
            assert again.headers["ETag"] == etag
            assert head.headers["Content-Length"] == str(len(remembered.content))
            assert len([s for s in sent if "boardgames" in s]) >= 2, sent
        assert not uncached.app.state.read_cache.holds(("/api/public/games", b""))
