"""The pages a person opens: `/` (where to go), `/docs` (Swagger UI) and `/redoc`, all offline.

FastAPI's own `/docs` and `/redoc` load their scripts and styles from a CDN (and ReDoc its
fonts from Google), so on a machine without internet they are blank pages. Here they follow
FastAPI's self-hosting recipe instead: the app is built with `docs_url=None, redoc_url=None`,
and these routes render the same pages with the assets the `fastapi-offline` wheel ships,
served from `ASSETS_PATH`. No page here makes a request that leaves the server.
"""

from __future__ import annotations

import functools
import importlib.resources
from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
#: Where Swagger UI and ReDoc's files are served (one metrics label for all of them).
ASSETS_PATH = "/static/docs"
OAUTH2_REDIRECT_PATH = f"{DOCS_PATH}/oauth2-redirect"
REDOC_SCRIPT_PATH = f"{ASSETS_PATH}/redoc.standalone.js"
#: ReDoc's side menu always shows Redocly's logo from their CDN (no option turns it off).
#: The script is served with that URL swapped for an image that cannot load, on which ReDoc
#: hides the logo itself, so the page makes no request off this server.
REDOC_LOGO_URL = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
NO_IMAGE = b"data:,"
#: Route templates of pages for people, not API traffic: the error-rate alert leaves them out
#: (a person reading the docs must not dilute the API's error rate).
PAGE_ROUTES = frozenset(
    {"/", DOCS_PATH, OAUTH2_REDIRECT_PATH, REDOC_PATH, ASSETS_PATH, REDOC_SCRIPT_PATH}
)

router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """The `static/` folder of the installed `fastapi-offline` package."""
    folder = importlib.resources.files("fastapi_offline") / "static"
    # A wheel installs as plain files; StaticFiles needs a real directory.
    return Path(str(folder))


class _Assets(StaticFiles):
    """StaticFiles that names its mount as the request's `route`, as Starlette's own router
    does: FastAPI's sets it for its own routes only, and the metrics label requests by it (one
    label, `ASSETS_PATH`, instead of `unmatched`)."""

    route: Mount | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.route is not None:
            scope["route"] = self.route
        await super().__call__(scope, receive, send)


def install_docs(app: FastAPI) -> None:
    """Serve `/`, `/docs`, `/redoc` and their assets on `app` (built with `docs_url=None`)."""
    app.include_router(router)  # first: its ReDoc script goes before the folder's
    assets = _Assets(directory=assets_dir())
    assets.route = Mount(ASSETS_PATH, app=assets, name="docs-assets")
    app.router.routes.append(assets.route)


@functools.cache
def redoc_script() -> bytes:
    """ReDoc's bundle with the one URL it would fetch from the internet taken out."""
    return (assets_dir() / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO_URL, NO_IMAGE)


@router.get(REDOC_SCRIPT_PATH)
async def redoc_js() -> Response:
    """The ReDoc bundle (see `REDOC_LOGO_URL`), cacheable for a day: it changes only with the
    installed package."""
    return Response(
        redoc_script(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )


def _root(request: Request) -> str:
    # Behind a proxy that mounts the app under a prefix, every URL must carry it.
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on this app's OpenAPI schema, with local assets."""
    root, app = _root(request), request.app
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_redirect() -> HTMLResponse:
    """The page Swagger UI's OAuth2 flow returns to (FastAPI's own)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_PATH)
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc on this app's OpenAPI schema, with local assets and the system fonts."""
    root, app = _root(request), request.app
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{REDOC_SCRIPT_PATH}",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


_LINKS = (
    (DOCS_PATH, "Interactive API docs (Swagger UI): try every route from the browser"),
    (REDOC_PATH, "API reference (ReDoc)"),
    ("/health", "Liveness: the process answers"),
    ("/health/ready", "Readiness: the database answers at the newest schema"),
    ("/api/public/games", "The catalogue (public JSON)"),
    ("/metrics", "Prometheus metrics"),
)

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem;
       color: #1f2328; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
p.summary { color: #57606a; margin-top: 0; }
ul { padding-left: 0; list-style: none; }
li { margin: 0.6rem 0; }
a { color: #0969da; font-weight: 600; text-decoration: none; }
a:hover { text-decoration: underline; }
code { font-size: 0.9em; }
span { color: #57606a; }
"""


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    """A small page that says what is where; nothing on it leaves this server."""
    root, app = _root(request), request.app
    items = "\n".join(
        f'<li><a href="{escape(root + path)}"><code>{escape(path)}</code></a> '
        f"<span>{escape(text)}</span></li>"
        for path, text in _LINKS
    )
    summary = escape(app.summary or "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(app.title)}</title>
<link rel="icon" href="{escape(root + ASSETS_PATH)}/favicon.png">
<style>{_STYLE}</style></head>
<body>
<h1>{escape(app.title)} <small>{escape(app.version)}</small></h1>
<p class="summary">{summary}</p>
<ul>
{items}
</ul>
<p>Admin routes (<code>/api/admin/...</code>) need <code>Authorization: Bearer &lt;token&gt;</code>
with a token from <code>ADMIN_TOKENS</code>; in Swagger UI, use <em>Authorize</em>.</p>
<p>How to run, configure and test it: <code>README.md</code> at the root of the
repository (the Demo section fills this service with games to browse).</p>
</body></html>
"""
    return HTMLResponse(page)
