"""Public reads may be cached: weak ETags, Last-Modified, 304s, Cache-Control, HEAD, and no
stale answer after any kind of write (import, re-import, thumbnail landing, delete)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import time_machine
from fastapi import FastAPI

from system.api import caching
from system.app import create_app
from system.clock import utcnow
from system.config import Settings
from system.db.models import BoardGame
from tests.api.served import served
from tests.conftest import ADMIN_TOKEN, ServiceFactory

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LONG_AGO = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC)
LONG_AGO_HTTP = "Fri, 02 Jan 2026 03:04:05 GMT"
LIST = "/api/public/games"


async def _seed(app: FastAPI, *games: BoardGame) -> list[int]:
    async with app.state.database.session() as session:
        session.add_all(games)
        await session.flush()
        return [g.id for g in games]


def _old_game(bgg_id: int, title: str) -> BoardGame:
    return BoardGame(bgg_id=bgg_id, title=title, created_at=LONG_AGO, updated_at=LONG_AGO)


def _validators(response: httpx.Response) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in ("ETag", "Last-Modified", "Cache-Control")}


async def _not_modified(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], first: httpx.Response
) -> None:
    answer = await client.get(path, headers=headers)
    assert answer.status_code == 304, (headers, answer.status_code)
    assert answer.content == b""
    assert _validators(answer) == _validators(first)


async def test_a_game_has_validators_and_answers_304(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    (game_id,) = await _seed(app, _old_game(28720, "Brass"))
    path = f"/api/public/games/{game_id}"
    first = await client.get(path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    assert first.headers["Last-Modified"] == LONG_AGO_HTTP
    assert first.headers["Cache-Control"] == "public, no-cache"
    assert first.json()["title"] == "Brass"
    opaque = etag[2:]

    for if_none_match in (
        etag,
        opaque,  # weak comparison: the strong form of the same tag matches too
        "*",
        f'"other", {etag}',
        f'W/"other",{opaque} ',
    ):
        await _not_modified(client, path, {"If-None-Match": if_none_match}, first)
    for since in (LONG_AGO_HTTP, "Fri, 02 Jan 2026 03:04:06 GMT", "Friday, 02-Jan-26 03:04:05 GMT"):
        await _not_modified(client, path, {"If-Modified-Since": since}, first)

    full = [
        {"If-None-Match": '"other"'},
        {"If-None-Match": 'W/"other", "another"'},
        {"If-None-Match": "not a tag list"},
        # If-None-Match decides alone when present: a matching date does not make it a 304.
        {"If-None-Match": '"other"', "If-Modified-Since": LONG_AGO_HTTP},
        {"If-Modified-Since": "Fri, 02 Jan 2026 03:04:04 GMT"},
        {"If-Modified-Since": "yesterday"},
        {"If-Modified-Since": ""},
        # A date in the future is not a valid one.
        {"If-Modified-Since": format_datetime(utcnow() + timedelta(days=1), usegmt=True)},
    ]
    for headers in full:
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 200, headers
        assert answer.json() == first.json()
        assert _validators(answer) == _validators(first)


async def test_a_page_has_an_etag_and_answers_304(app: FastAPI, client: httpx.AsyncClient) -> None:
    await _seed(app, _old_game(1, "Agricola"), _old_game(2, "Brass"), _old_game(3, "Catan"))
    first = await client.get(LIST, params={"limit": 2})
    assert first.status_code == 200 and first.json()["total"] == 3
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["Cache-Control"] == "public, no-cache"
    # No date can say a page changed when a game was deleted from it: no Last-Modified.
    assert "Last-Modified" not in first.headers
    answer = await client.get(LIST, params={"limit": 2}, headers={"If-None-Match": etag})
    assert answer.status_code == 304 and answer.content == b""
    assert _validators(answer) == _validators(first)
    answer = await client.get(
        LIST, params={"limit": 2}, headers={"If-Modified-Since": LONG_AGO_HTTP}
    )
    assert answer.status_code == 200

    # Another page, order or search is another body, so another tag.
    others: list[dict[str, str | int]] = [
        {"limit": 2, "offset": 1},
        {"limit": 3},
        {"limit": 2, "sort": "-title"},
        {"limit": 2, "q": "r"},  # Agricola and Brass: a total of 2
    ]
    tags = {etag} | {(await client.get(LIST, params=p)).headers["ETag"] for p in others}
    assert len(tags) == 1 + len(others)


async def test_head_answers_as_get_without_a_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    (game_id,) = await _seed(app, _old_game(28720, "Brass"))
    for path in (f"/api/public/games/{game_id}", LIST):
        got = await client.get(path)
        head = await client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert _validators(head) == _validators(got)
        assert head.headers["Content-Length"] == str(len(got.content))
        assert head.headers["Content-Type"] == "application/json"
        conditional = await client.head(path, headers={"If-None-Match": got.headers["ETag"]})
        assert conditional.status_code == 304 and conditional.content == b""
    missing = await client.head("/api/public/games/999")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "path", ["/api/public/games/999", "/api/public/games/0", f"{LIST}?limit=0"]
)
async def test_errors_carry_no_validators(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path, headers={"If-None-Match": "*"})
    assert answer.status_code in (404, 422)
    assert "ETag" not in answer.headers and "Last-Modified" not in answer.headers


async def test_max_age_is_a_setting(make_service: ServiceFactory) -> None:
    async with make_service(public_cache_max_age=30) as service:
        answer = await service.client.get(LIST)
    assert answer.headers["Cache-Control"] == "public, max-age=30, stale-while-revalidate=30"


async def _get(client: httpx.AsyncClient, path: str, etag: str) -> httpx.Response:
    """A revalidation that must not be answered 304 (the data changed)."""
    answer = await client.get(path, headers={"If-None-Match": etag})
    assert answer.status_code != 304, f"{path}: stale 304 after a write"
    return answer


async def test_no_stale_answer_after_an_import_or_a_reimport(
    make_service: ServiceFactory,
) -> None:
    async with make_service(background_workers_in_process=False) as service:
        client = service.client
        empty = await client.get(LIST)
        assert empty.json()["total"] == 0

        # Re-import: a row stored long ago, which the import then updates.
        (old_id,) = await _seed(service.app, _old_game(28720, "An old title"))
        detail = f"/api/public/games/{old_id}"
        before = await client.get(detail)
        before_list = await client.get(LIST)
        assert before.headers["Last-Modified"] == LONG_AGO_HTTP

        # An import adds a game: the list changes.
        created = await service.import_game(174430)
        assert created.status_code == 201, created.text
        listed = await _get(client, LIST, before_list.headers["ETag"])
        assert listed.status_code == 200 and listed.json()["total"] == 2
        created_detail = await client.get(f"/api/public/games/{created.json()['id']}")
        # Written this very moment: no Last-Modified yet (a second write in the same second
        # would have the same date).
        assert "Last-Modified" not in created_detail.headers

        updated = await service.import_game(28720)
        assert updated.status_code == 200 and updated.json()["id"] == old_id
        after = await _get(client, detail, before.headers["ETag"])
        assert after.status_code == 200 and after.json()["title"] == "Brass: Lancashire"
        since = await client.get(detail, headers={"If-Modified-Since": LONG_AGO_HTTP})
        assert since.status_code == 200 and since.json()["title"] == "Brass: Lancashire"
        relisted = await _get(client, LIST, listed.headers["ETag"])
        assert "Brass: Lancashire" in [g["title"] for g in relisted.json()["items"]]


async def test_no_stale_answer_after_a_thumbnail_lands(make_service: ServiceFactory) -> None:
    async with make_service(background_workers_in_process=False) as service:
        client = service.client
        created = await service.import_game(28720)
        assert created.status_code == 201, created.text
        detail = f"/api/public/games/{created.json()['id']}"
        before = await client.get(detail)
        before_list = await client.get(LIST)
        assert before.json()["has_thumbnail"] is False

        service.services.pool.start()  # the queued thumbnail job runs now
        await service.services.settle()

        after = await _get(client, detail, before.headers["ETag"])
        assert after.json()["has_thumbnail"] is True
        listed = await _get(client, LIST, before_list.headers["ETag"])
        assert listed.json()["items"][0]["has_thumbnail"] is True


async def test_no_stale_answer_after_a_delete(app: FastAPI, client: httpx.AsyncClient) -> None:
    # The oldest game goes: the newest `updated_at` of the catalogue stays as it was.
    old, newer = await _seed(
        app,
        _old_game(1, "Agricola"),
        BoardGame(bgg_id=2, title="Brass", updated_at=LONG_AGO + timedelta(days=1)),
    )
    detail = await client.get(f"/api/public/games/{old}")
    pages: dict[str, dict[str, str | int]] = {
        "first": {"limit": 1},  # the deleted game is on it
        "second": {"limit": 1, "offset": 1},  # it is not, but the page moves
        "kept": {"limit": 1, "sort": "-title"},  # the same row before and after: the total
        "both": {},
        "other": {"q": "brass"},  # it does not match: this answer stays as it was
    }
    before = {name: await client.get(LIST, params=p) for name, p in pages.items()}

    deleted = await client.delete(f"/api/admin/games/{old}", headers=AUTH)
    assert deleted.status_code == 204, deleted.text

    gone = await client.get(
        f"/api/public/games/{old}", headers={"If-None-Match": detail.headers["ETag"]}
    )
    assert gone.status_code == 404 and "ETag" not in gone.headers
    gone = await client.get(
        f"/api/public/games/{old}", headers={"If-Modified-Since": LONG_AGO_HTTP}
    )
    assert gone.status_code == 404
    for name in ("first", "second", "kept", "both"):
        answer = await _get_page(client, pages[name], before[name].headers["ETag"])
        assert answer.json()["total"] == 1, name
        assert old not in [g["id"] for g in answer.json()["items"]]
    unchanged = await client.get(
        LIST, params=pages["other"], headers={"If-None-Match": before["other"].headers["ETag"]}
    )
    assert unchanged.status_code == 304
    assert (await client.get(f"/api/public/games/{newer}")).status_code == 200


async def _get_page(
    client: httpx.AsyncClient, params: dict[str, str | int], etag: str
) -> httpx.Response:
    answer = await client.get(LIST, params=params, headers={"If-None-Match": etag})
    assert answer.status_code == 200, (params, answer.status_code)
    return answer


def test_last_modified_waits_until_the_write_has_settled() -> None:
    game = BoardGame(id=1, bgg_id=1, title="x", updated_at=LONG_AGO)
    stored = caching.Representation(1, b"{}", caching.game_tag(game), game.updated_at)
    assert stored.validators(now=LONG_AGO + timedelta(seconds=1)).last_modified is None
    settled = stored.validators(now=LONG_AGO + caching.LAST_MODIFIED_SETTLE)
    assert settled.last_modified == LONG_AGO.replace(microsecond=0)
    # The ETag does not wait: it changes with any write, whatever its second.
    later = BoardGame(id=1, bgg_id=1, title="x", updated_at=LONG_AGO + timedelta(microseconds=1))
    assert caching.game_tag(later) != caching.game_tag(game)


def test_a_stored_game_gains_its_last_modified_once_settled() -> None:
    """Its headers are kept once final, so the kept ones must be the settled ones."""
    written = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    stored = caching.Representation(1, b"{}", "tag", written)
    with time_machine.travel(written + timedelta(seconds=1), tick=False):
        validators, headers = stored.headers("no-cache")
        assert validators.last_modified is None and "Last-Modified" not in headers
    with time_machine.travel(written + timedelta(seconds=3), tick=False):
        validators, headers = stored.headers("no-cache")
        assert headers["Last-Modified"] == "Thu, 01 Jan 2026 12:00:00 GMT"
        assert headers["ETag"] == 'W/"tag"' and headers["Cache-Control"] == "no-cache"
    # Kept, and told apart by Cache-Control (a setting's change): the date stays.
    assert stored.headers("no-cache")[1] is headers
    assert stored.headers("public, max-age=60")[1]["Cache-Control"] == "public, max-age=60"
    assert stored.headers("public, max-age=60")[1]["Last-Modified"] == headers["Last-Modified"]
    page = caching.Representation(1, b"{}", "page")
    assert page.headers("no-cache")[1] == {"ETag": 'W/"page"', "Cache-Control": "no-cache"}


async def test_over_real_http_304_and_head_keep_the_connection_in_step(
    settings: Settings,
) -> None:
    """Through uvicorn: a 304 and a HEAD send no body, so the next answer on the same
    keep-alive connection is read whole (a stray body would be taken for its start)."""
    app = create_app(settings)
    async with served(app) as base_url:
        (game_id,) = await _seed(app, _old_game(28720, "Brass"))
        path = f"/api/public/games/{game_id}"
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits) as client:
            got = await client.get(path)
            assert got.status_code == 200
            head = await client.head(path)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["Content-Length"] == str(len(got.content))
            cached = await client.get(path, headers={"If-None-Match": got.headers["ETag"]})
            assert cached.status_code == 304 and cached.content == b""
            assert cached.headers["ETag"] == got.headers["ETag"]
            again = await client.get(path)
            assert again.status_code == 200 and again.json() == got.json()


@pytest.mark.parametrize(
    "value",
    [
        "Fri, 02 Jan 2026 03:04:05 GMT",  # IMF-fixdate
        "Friday, 02-Jan-26 03:04:05 GMT",  # obsolete RFC 850
        "Fri Jan  2 03:04:05 2026",  # obsolete asctime
    ],
)
def test_every_http_date_format_is_read(value: str) -> None:
    assert caching.parse_http_date(value) == LONG_AGO.replace(microsecond=0)


@pytest.mark.parametrize("value", ["", "yesterday", "Fri, 02 Jan 2026 25:04:05 GMT", "Fri"])
def test_what_is_no_http_date_is_none(value: str) -> None:
    assert caching.parse_http_date(value) is None
