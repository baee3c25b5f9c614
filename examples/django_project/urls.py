"""The project's routes: the shared table three times over.

* ``/...``             function views, sync (``/async`` is async), plus a class-based view;
* ``/async-views/...`` the same routes, every view ``async def``;
* ``/drf/...``         the same routes as Django REST framework views.
"""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("", include("examples.django_project.views")),
    path("async-views/", include("examples.django_project.async_views")),
    path("drf/", include("examples.django_project.drf_views")),
]
