"""Routers that rule themselves out by path before FastAPI matches their routes.

FastAPI (0.165) finds a request's route by asking each included router in turn, and a router
answers by matching the path against every one of its routes' regular expressions. A request
for the last routers paid for all the ones before it: 60-110 µs more CPU for the forecasts,
the subscriptions or GraphQL than for the first router (bench/routing.py). A router whose
routes all start with literal prefixes that the path does not start with cannot match, so it
says so with one `str.startswith`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import Scope


def _route_path(scope: Scope) -> str:
    """The path routes match against (as Starlette computes it): the request's path below
    the app's root path, when the path is under it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


class PrefixedRouter(APIRouter):
    """An APIRouter that answers "no match" at once for a path outside its routes' prefixes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prefixes: tuple[str, ...] = ()
        self._prefixes_of = -1  # the number of routes `_prefixes` was computed for

    def literal_prefixes(self) -> tuple[str, ...]:
        """Each route's path up to its first parameter (routes may be added at any time)."""
        if self._prefixes_of != len(self.routes):
            paths = (getattr(route, "path", "") for route in self.routes)
            self._prefixes = tuple(sorted({path.partition("{")[0] for path in paths}))
            self._prefixes_of = len(self.routes)
        return self._prefixes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] in ("http", "websocket") and not _route_path(scope).startswith(
            self.literal_prefixes()
        ):
            return Match.NONE, {}
        return super().matches(scope)
