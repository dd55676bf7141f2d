"""The `quarterback` command as an operator (and the Docker image) runs it: real processes."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

QUARTERBACK = [sys.executable, "-m", "service"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QB_")}
    env["QB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'qb.db'}"
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        QUARTERBACK + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_workspace_create_json_then_key_works(tmp_path):
    env = _env(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    result = run(["workspace", "create", "Initech", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"workspace_id", "api_key"}
    assert created["api_key"].startswith("qb_")
    listed = run(["workspace", "list"], env, tmp_path)
    assert created["workspace_id"] in listed.stdout


def test_bad_database_url_fails_with_one_line(tmp_path):
    for url in ("mysql://root@localhost/qb", "postgresql://postgres@127.0.0.1:1/nothing"):
        result = run(["migrate"], _env(tmp_path, QB_DATABASE_URL=url), tmp_path)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error:")
        assert "Traceback" not in result.stderr


def test_several_workers_need_postgresql(tmp_path):
    result = run(["serve", "--workers", "2"], _env(tmp_path), tmp_path)
    assert result.returncode != 0
    assert "PostgreSQL" in result.stderr


def test_workspace_create_rejects_bad_options(tmp_path):
    env = _env(tmp_path)
    run(["migrate"], env, tmp_path)
    result = run(["workspace", "create", "X", "--renewal-quarterback", "legal"], env, tmp_path)
    assert result.returncode == 2
    assert "renewal_quarterback" in result.stderr


@pytest.fixture
def demo_server(tmp_path):
    port = _free_port()
    env = _env(tmp_path, QB_PORT=str(port))
    process = subprocess.Popen(
        [*QUARTERBACK, "serve", "--demo"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Uvicorn running" in line or "Application startup complete" in line:
                break
        yield f"http://127.0.0.1:{port}", "".join(output)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_demo_prints_a_working_key_and_curl_commands(demo_server):
    base_url, output = demo_server
    key = re.search(r"Admin API key \(shown once\): (qb_\S+)", output)
    assert key, output
    curls = [line.strip() for line in output.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 3
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{base_url}/healthz").json() == {"status": "ok"}
        assert http.get(f"{base_url}/readyz").status_code == 200
        for curl in curls:
            url = re.search(r"'?(http://\S+?)'?$", curl).group(1)
            response = http.get(url, headers={"Authorization": f"Bearer {key.group(1)}"})
            assert response.status_code == 200, (curl, response.text)
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        accounts = http.get(f"{base_url}/v1/accounts", headers=headers).json()["items"]
        assert len({a["stage"] for a in accounts}) >= 4
        tasks = http.get(f"{base_url}/v1/tasks?status=open&kind=handoff", headers=headers).json()
        assert tasks["items"]


def test_playbook_validate_offline(tmp_path):
    env = _env(tmp_path)
    default = Path(__file__).resolve().parents[1] / "service" / "playbooks" / "default.yaml"
    ok = run(["playbook", "validate", str(default)], env, tmp_path)
    assert ok.returncode == 0 and "valid" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(default.read_text().replace("move_to: IMPLEMENT", "move_to: MARS"))
    result = run(["playbook", "validate", str(broken)], env, tmp_path)
    assert result.returncode == 1
    assert "/rules/1/move_to" in result.stderr and "MARS" in result.stderr
    missing = run(["playbook", "validate", str(tmp_path / "nope.yaml")], env, tmp_path)
    assert missing.returncode == 2


def test_webhooks_sign_prints_a_curl_the_server_accepts(demo_server, tmp_path):
    import shlex
    import shutil

    base_url, output = demo_server
    key = re.search(r"Admin API key \(shown once\): (qb_\S+)", output).group(1)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=10) as http:
        source = http.post(
            f"{base_url}/v1/webhook-sources",
            json={"kind": "standard", "name": "cli"},
            headers=headers,
        ).json()
    event = {
        "id": "cli-1",
        "type": "opportunity_created",
        "occurred_at": "2027-01-12T09:30:00Z",
        "account": {"external_id": "cli-co", "name": "CLI Co"},
    }
    body = tmp_path / "event.json"
    body.write_text(json.dumps(event))
    signed = run(
        ["webhooks", "sign", "--kind", "standard", "--url", source["ingestion_url"],
         "--secret", source["secret"], str(body)],
        _env(tmp_path), tmp_path,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    command = shlex.split(signed.stdout)
    assert command[0] == "curl"
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    sent = subprocess.run(
        [*command, "-o", "/dev/null", "-w", "%{http_code}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert sent.stdout == "200", sent
    with httpx.Client(timeout=10) as http:
        events = http.get(f"{base_url}/v1/events", headers=headers).json()["items"]
    assert [(e["type"], e["outcome"]) for e in events] == [("opportunity_created", "applied")]
