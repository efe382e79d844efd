"""The wheel carries ontology/, data/ and queries/, so an install with no checkout around works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("copy") / "escap-kg"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "*cache*", "__pycache__", "dist", "build"),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(copy)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("escap_kg-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_resources(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("ontology", "data", "queries"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file():
                member = f"escap_kg/_resources/{path.relative_to(ROOT).as_posix()}"
                assert member in names, f"{member} is missing from the wheel"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "escap-kg = escap_kg.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.slow
def test_installed_wheel_works_away_from_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "-t", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCAP_KG_")}
    env["PYTHONPATH"] = str(target)
    code = (
        "import sys\n"
        "from escap_kg import paths\n"
        "from escap_kg.cli import main\n"
        "print(paths.resource_root())\n"
        "sys.argv = ['escap-kg', 'query', '1', '--format', 'csv']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    root, *rows = done.stdout.splitlines()
    assert Path(root).is_relative_to(target), f"resources came from {root}, not the wheel"
    assert any("fifth-appc" in row for row in rows)
