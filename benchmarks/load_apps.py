"""The apps ``benchmarks/load.py`` serves: one per framework, open and guarded routes.

Every app answers ``GET /open``, ``/guarded``, ``/guarded-2`` and ``/open-2``
with ``{"ok": true}``; the only difference is a plain ``@require_auth`` on the
guarded ones. The routes are registered in that order (:data:`ROUTES`), which
is the order a router that tries routes one by one (Starlette, FastAPI,
Django) tries them in: an open and a guarded route each sit at positions
that add up to the same (1 + 4 = 2 + 3), so when ``load.py`` measures both
paths of each kind, both kinds pay the same routing cost on average. The
two paths of a kind share one handler (one decorated function) wherever the
framework allows it. Servers
load an app by attribute name (``load_apps:flask``, ``load_apps:litestar``...)
or, for servers that only evaluate names in the module (hypercorn), by
``load_apps:build('quart')``. Django gets a minimal project (no apps, no
middleware): ``load_apps:django`` is its WSGI handler with sync views,
``load_apps:django_asgi`` its ASGI handler with async views. Each app is built on first access, so a server
imports only its own framework.

Configuration comes from the environment the benchmark sets: the ``CLERK_*``
variables of a :class:`clerkguard.testing.LocalIssuer`, plus
``CLERKGUARD_BENCH_COOLDOWN`` (``jwks_cooldown``, seconds).

To benchmark another framework: add a ``_<name>()`` builder here and one
entry to ``FRAMEWORKS`` in ``load.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from clerkguard import ClerkAuth

BODY = {"ok": True}

#: ``(path, guarded)`` in registration order: open and guarded at mirrored positions.
ROUTES: tuple[tuple[str, bool], ...] = (
    ("/open", False),
    ("/guarded", True),
    ("/guarded-2", True),
    ("/open-2", False),
)
OPEN_PATHS = tuple(path for path, guarded in ROUTES if not guarded)
GUARDED_PATHS = tuple(path for path, guarded in ROUTES if guarded)


def _auth() -> ClerkAuth:
    return ClerkAuth(jwks_cooldown=float(os.environ.get("CLERKGUARD_BENCH_COOLDOWN", "30")))


def _flask() -> Any:
    from flask import Flask

    from clerkguard.flask import ClerkGuard, require_auth

    app = Flask("bench")
    ClerkGuard(app, auth=_auth())

    def open_route() -> dict[str, bool]:
        return BODY

    @require_auth
    def guarded_route() -> dict[str, bool]:
        return BODY

    for path, guarded in ROUTES:
        app.add_url_rule(path, view_func=guarded_route if guarded else open_route, methods=["GET"])
    return app


def _quart() -> Any:
    from quart import Quart

    from clerkguard.quart import ClerkGuard, require_auth

    app = Quart("bench")
    ClerkGuard(app, auth=_auth())

    async def open_route() -> dict[str, bool]:
        return BODY

    @require_auth
    async def guarded_route() -> dict[str, bool]:
        return BODY

    for path, guarded in ROUTES:
        app.add_url_rule(path, view_func=guarded_route if guarded else open_route, methods=["GET"])
    return app


def _litestar() -> Any:
    from litestar import Litestar, get

    from clerkguard.litestar import ClerkPlugin, require_auth

    # One handler per kind, serving both of its paths (Litestar's router is a trie: order-free).
    @get(list(OPEN_PATHS))
    async def open_route() -> dict[str, bool]:
        return BODY

    @get(list(GUARDED_PATHS))
    @require_auth
    async def guarded_route() -> dict[str, bool]:
        return BODY

    return Litestar([open_route, guarded_route], plugins=[ClerkPlugin(_auth())], openapi_config=None)


def _litestar_request() -> Any:
    """Litestar with handlers that declare ``request`` themselves: nothing is injected.

    Litestar builds and validates keyword arguments only for handlers that take
    any; ``@require_auth`` adds ``request`` to a handler without it (see
    ``benchmarks/README.md``). Here both routes pay for it, so the ratio shows
    the guard's own cost.
    """
    from litestar import Litestar, Request, get

    from clerkguard.litestar import ClerkPlugin, require_auth

    @get(list(OPEN_PATHS))
    async def open_route(request: Request[Any, Any, Any]) -> dict[str, bool]:
        return BODY

    @get(list(GUARDED_PATHS))
    @require_auth
    async def guarded_route(request: Request[Any, Any, Any]) -> dict[str, bool]:
        return BODY

    return Litestar(
        [open_route, guarded_route],
        plugins=[ClerkPlugin(_auth())],
        openapi_config=None,
        signature_namespace={"Request": Request},  # postponed annotations, imported locally
    )


def _sanic() -> Any:
    from sanic import Request, Sanic
    from sanic.response import HTTPResponse, json

    from clerkguard.sanic import ClerkGuard, require_auth

    app = Sanic("bench")
    ClerkGuard(app, auth=_auth())

    async def open_route(request: Request) -> HTTPResponse:
        return json(BODY)

    @require_auth
    async def guarded_route(request: Request) -> HTTPResponse:
        return json(BODY)

    for path, guarded in ROUTES:
        # Sanic wants a distinct name per route; the path (minus its slash) is one.
        handler = guarded_route if guarded else open_route
        app.add_route(handler, path, methods=["GET"], name=path.strip("/").replace("-", "_"))
    return app


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from clerkguard.starlette import ClerkGuard, require_auth

    async def open_route(request: Request) -> JSONResponse:
        return JSONResponse(BODY)

    @require_auth
    async def guarded_route(request: Request) -> JSONResponse:
        return JSONResponse(BODY)

    app = Starlette(
        routes=[Route(path, guarded_route if guarded else open_route) for path, guarded in ROUTES]
    )
    ClerkGuard(app, _auth())
    return app


def _fastapi() -> Any:
    from fastapi import FastAPI

    from clerkguard.fastapi import ClerkGuard, require_auth

    app = FastAPI(openapi_url=None)  # no OpenAPI/docs routes: ROUTES are the only ones
    ClerkGuard(app, _auth())

    async def open_route() -> dict[str, bool]:
        return BODY

    @require_auth
    async def guarded_route() -> dict[str, bool]:
        return BODY

    for path, guarded in ROUTES:
        app.add_api_route(path, guarded_route if guarded else open_route, methods=["GET"])
    return app


def _django_urls() -> Any:
    """A minimal Django project (no apps, no middleware): sync and async open/guarded views."""
    import types

    import django
    from django.conf import settings
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    from clerkguard.django import require_auth

    def open_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(BODY)

    @require_auth
    def guarded_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(BODY)

    async def async_open_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(BODY)

    @require_auth
    async def async_guarded_view(request: HttpRequest) -> JsonResponse:
        return JsonResponse(BODY)

    urls = types.ModuleType("load_apps_django_urls")
    urls.sync = [  # type: ignore[attr-defined]
        path(route.lstrip("/"), guarded_view if guarded else open_view) for route, guarded in ROUTES
    ]
    urls.urlpatterns = urls.sync  # type: ignore[attr-defined]
    urls.asynchronous = [  # type: ignore[attr-defined]
        path(route.lstrip("/"), async_guarded_view if guarded else async_open_view)
        for route, guarded in ROUTES
    ]
    if not settings.configured:
        settings.configure(
            ROOT_URLCONF=urls,
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            CLERK_AUTH=_auth(),
        )
        django.setup()
    return urls


def _django() -> Any:
    """Django's WSGI handler, sync views (gunicorn sync worker)."""
    from django.core.handlers.wsgi import WSGIHandler

    _django_urls()
    return WSGIHandler()


def _django_asgi() -> Any:
    """Django's ASGI handler, async views (uvicorn)."""
    from django.core.handlers.asgi import ASGIHandler

    urls = _django_urls()
    urls.urlpatterns = urls.asynchronous
    return ASGIHandler()


_BUILDERS: dict[str, Callable[[], Any]] = {
    "flask": _flask,
    "quart": _quart,
    "litestar": _litestar,
    "litestar_request": _litestar_request,
    "sanic": _sanic,
    "starlette": _starlette,
    "fastapi": _fastapi,
    "django": _django,
    "django_asgi": _django_asgi,
}
_BUILT: dict[str, Any] = {}


def build(name: str) -> Any:
    """The app of framework ``name``, built once (``load_apps:build('quart')`` for hypercorn)."""
    if name not in _BUILT:
        _BUILT[name] = _BUILDERS[name]()
    return _BUILT[name]


def __getattr__(name: str) -> Any:
    """``load_apps.<framework>``: that framework's app, built once on first access."""
    if name not in _BUILDERS:
        raise AttributeError(name)
    return build(name)
