"""The image installs the package with `pip install .` (Dockerfile): everything the service
reads at run time must be in the wheel, not only in this checkout.

A data file added under service/ without a package-data entry (a playbook, a schema, a
migration, a static asset) works in every test run from the checkout and breaks only in
the image; this builds the wheel the way the Dockerfile does and compares.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _service_files() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "service").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_carries_every_file_of_the_service(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("quarterback-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("service/")}
    missing = sorted(_service_files() - packed)
    assert missing == [], f"add these to [tool.setuptools.package-data]: {missing}"
