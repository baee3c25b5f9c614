"""The project's routes: the shared table three times over.

* ``/...``             function views, sync (``/async`` is async), plus a class-based view;
* ``/async-views/...`` the same routes, every view ``async def``;
* ``/drf/...``         the same routes as Django REST framework views.
"""

from __future__ import annotations

from django.urls import include, path

from . import async_views, drf_views, views

urlpatterns = [
    path("", include(views)),
    path("async-views/", include(async_views)),
    path("drf/", include(drf_views)),
]
