"""Routers rule themselves out by path: a request only meets the routes that could match."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi.routing import APIRoute
from starlette._utils import get_route_path

from service.app import create_app
from service.config import Settings
from service.kit.routing import PrefixedRouter, _route_path


@pytest.fixture
def route_matches_seen(monkeypatch) -> list[str]:
    """The path of every FastAPI route that a request's matching asks."""
    seen: list[str] = []
    original = APIRoute.matches

    def recording(self, scope):
        seen.append(self.path)
        return original(self, scope)

    monkeypatch.setattr(APIRoute, "matches", recording)
    return seen


async def test_a_forecast_request_meets_only_the_forecast_routes(
    client, workspace, route_matches_seen
):
    response = await client.get(
        "/v1/forecasts/renewals/accounts", headers={"Authorization": f"Bearer {workspace.key}"}
    )
    assert response.status_code == 200, response.text
    assert route_matches_seen  # the forecast routes themselves were matched
    assert {path.split("/")[2] for path in route_matches_seen} == {"forecasts"}


async def test_other_paths_meet_no_rest_or_webhook_route(client, route_matches_seen):
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.get("/graphql")).status_code != 404
    assert "/healthz" in route_matches_seen  # the app's own routes, matched as before
    assert [path for path in route_matches_seen if path.startswith(("/v1", "/webhooks"))] == []


async def test_a_path_in_no_router_still_redirects_or_answers_405(client, workspace):
    # The prefixes decide only that a router cannot match; FastAPI still does the rest.
    headers = {"Authorization": f"Bearer {workspace.key}"}
    assert (await client.delete("/v1/forecasts/renewals", headers=headers)).status_code == 405
    answer = await client.get("/v1/tasks/", headers=headers)
    assert answer.status_code in (200, 307), answer.text


def test_literal_prefixes_follow_routes_added_later():
    router = PrefixedRouter(prefix="/v1/things")

    @router.get("")
    async def things() -> list[str]:
        return []

    assert router.literal_prefixes() == ("/v1/things",)

    @router.get("/{thing_id}/parts")
    async def parts(thing_id: str) -> list[str]:
        return []

    assert router.literal_prefixes() == ("/v1/things", "/v1/things/")


@pytest.mark.parametrize(
    ("path", "root_path", "expected"),
    [
        ("/v1/tasks", "", "/v1/tasks"),
        ("/api/v1/tasks", "/api", "/v1/tasks"),
        ("/api", "/api", ""),
        ("/apiary/v1/tasks", "/api", "/apiary/v1/tasks"),  # not under the root path
        ("/v1/tasks", "/api", "/v1/tasks"),
    ],
)
def test_route_path_is_starlettes(path, root_path, expected):
    scope = {"type": "http", "path": path, "root_path": root_path}
    assert _route_path(scope) == expected == get_route_path(scope)


async def test_routes_still_match_under_a_root_path(db, workspace):
    """Behind a proxy that mounts the app under a prefix (uvicorn --root-path)."""
    app = create_app(Settings(database_url=db.url, scheduler_enabled=False), engine=db.engine)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = {"Authorization": f"Bearer {workspace.key}"}
            answer = await client.get("/api/v1/tasks", headers=headers)
            assert answer.status_code == 200, answer.text
            assert (await client.get("/api/v1/nothing-here", headers=headers)).status_code == 404
