"""Browser check: GraphiQL in headless Chromium against `quarterback serve --demo`.

A real server process on a free loopback port, Debian's Chromium driven by Selenium through
Debian's chromedriver (no browser download), the demo key in GraphiQL's Headers tab, a
query run with the Execute button, and its result read from the page. Every file the page
loads must come from the server itself: GraphiQL works without reaching a CDN.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
QUARTERBACK = Path(sys.executable).with_name("quarterback")

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, demo API key) of `quarterback serve --demo` on its own SQLite file."""
    port = _free_port()
    env = {
        **os.environ,
        "QB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        "QB_SCHEDULER_ENABLED": "false",
    }
    process = subprocess.Popen(
        [str(QUARTERBACK), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        key = _demo_key(process)
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base, process)
        yield base, key
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _demo_key(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Admin API key (shown once):"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no demo key printed:\n" + "".join(seen))


def _wait_until_up(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not answer /healthz")


def test_graphiql_runs_a_query_with_the_demo_key(demo_server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    base, key = demo_server
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        # GraphiQL's own share-link parameters fill the query and the Headers tab.
        query = "{ workspace { name } }"
        headers = json.dumps({"Authorization": f"Bearer {key}"})
        driver.get(f"{base}/graphql?q={quote(query)}&headers={quote(headers)}")
        wait = WebDriverWait(driver, 30)
        run = wait.until(
            expected_conditions.element_to_be_clickable(
                (By.CSS_SELECTOR, ".graphiql-execute-button")
            )
        )
        run.click()
        wait.until(
            expected_conditions.text_to_be_present_in_element(
                (By.CSS_SELECTOR, ".graphiql-response"), "Demo Co"
            )
        )
        response = driver.find_element(By.CSS_SELECTOR, ".graphiql-response").text
        assert '"name": "Demo Co"' in response
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert any("graphiql.min.js" in url for url in loaded)
        assert all(url.startswith(base) for url in loaded), loaded
    finally:
        driver.quit()
