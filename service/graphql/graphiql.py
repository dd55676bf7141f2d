"""GraphiQL that works offline: Strawberry's page, with its scripts served by this app.

Strawberry's GraphiQL page loads React, GraphiQL and the explorer plugin from a public CDN,
which a browser behind a firewall (or this app's CI) cannot reach. The files it names are
vendored under `static/graphiql/` (copied from the npm registry's tarballs by
`python -m service.graphql.graphiql`, which `make graphiql-assets` runs) and served at
`/graphql/ide/`; the page is rewritten to load them from there. The page keeps its
subresource-integrity hashes, so a browser refuses a vendored file that differs from the
CDN's.

Subscriptions from the page send the key in the Headers tab as `connection_init`
parameters, since a browser cannot set headers on a websocket.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path

from strawberry.http.ides import get_graphql_ide_html

CDN = "https://unpkg.com/"
ASSETS_URL = "/graphql/ide/"
ASSETS_DIR = Path(__file__).parent / "static" / "graphiql"

# `https://unpkg.com/<package>@<version>/<file>`; the package may be scoped (`@graphiql/...`).
_ASSET = re.compile(re.escape(CDN) + r"((?:@[^/\"]+/)?[^@/\"]+)@([^/\"]+)/([^\"]+)")

# The fetcher Strawberry builds, and the same with websocket connection params that carry
# whatever headers the user typed in GraphiQL's Headers tab (read on each connection).
_FETCHER = "        subscriptionUrl,\n      });"
_FETCHER_WITH_KEY = """        subscriptionUrl,
        wsConnectionParams: function () {
          try {
            return JSON.parse(window.__quarterbackHeaders || parameters.headers || "{}");
          } catch (error) {
            return {};
          }
        },
      });"""
_ON_EDIT_HEADERS = "        function onEditHeaders(newHeaders) {\n"
_REMEMBER_HEADERS = _ON_EDIT_HEADERS + "          window.__quarterbackHeaders = newHeaders;\n"


def assets(html: str) -> list[tuple[str, str, str]]:
    """(package, version, file) of every CDN file the page loads."""
    return [(match[1], match[2], match[3]) for match in _ASSET.finditer(html)]


@cache
def page() -> str:
    """Strawberry's GraphiQL page, loading its files from this app instead of the CDN."""
    html = get_graphql_ide_html("graphiql")
    html = html.replace(_FETCHER, _FETCHER_WITH_KEY).replace(_ON_EDIT_HEADERS, _REMEMBER_HEADERS)
    return html.replace(CDN, ASSETS_URL)


def missing_assets() -> list[str]:
    """Files the page names that are not vendored (after a Strawberry upgrade, say)."""
    wanted = assets(get_graphql_ide_html("graphiql"))
    return [
        f"{package}@{version}/{file}"
        for package, version, file in wanted
        if not (ASSETS_DIR / f"{package}@{version}" / file).is_file()
    ]


def vendor(target: Path = ASSETS_DIR) -> None:
    """Copy the page's files out of their npm packages (`npm pack`; the npm registry only)."""
    wanted = assets(get_graphql_ide_html("graphiql"))
    with tempfile.TemporaryDirectory() as scratch:
        for package, version, file in wanted:
            spec = f"{package}@{version}"
            tarball = subprocess.run(
                ["npm", "pack", "--silent", spec],
                cwd=scratch,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            with tarfile.open(Path(scratch) / tarball) as archive:
                member = archive.extractfile(f"package/{file}")
                assert member is not None, f"{spec} has no {file}"
                destination = target / spec / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(member.read())
            print(f"vendored {spec}/{file}", file=sys.stderr)


if __name__ == "__main__":
    vendor()
