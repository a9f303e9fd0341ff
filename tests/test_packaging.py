"""The distribution installs one top-level import package, ``rlcot`` (issue 17).

PyPI's ``verifiers`` (Prime Intellect's RL environments) and ``evals`` (OpenAI's) are
installed by the people this toolkit is for; a wheel of ours with top-level packages
of those names would overwrite their files. The repository keeps ``verifiers/`` and
``evals/`` at its top, and pyproject maps them to ``rlcot.verifiers`` and ``rlcot.evals``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = "import rlcot.verifiers.math, rlcot.evals.sweep, rlcot.evals.report; print(rlcot.verifiers.__file__)"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("rlcot", "verifiers", "evals"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True)
    (built,) = out.glob("rlcot-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"rlcot", wheel.name.split("-py")[0] + ".dist-info"}
    for data in ("rlcot/verifiers/data/crossword_words.tsv", "rlcot/evals/report_page.html",
                 "rlcot/data/gsm8k/test.jsonl", "rlcot/data/gsm8k/LICENSE"):
        assert data in names


def test_the_built_wheel_imports_rlcot_verifiers_and_rlcot_evals_and_no_old_names(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().startswith(str(site))
    old = subprocess.run([sys.executable, "-c", "import verifiers"], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True)
    assert "No module named 'verifiers'" in old.stderr


def test_the_editable_install_imports_the_same_names_from_anywhere(tmp_path):
    found = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == ROOT / "verifiers" / "__init__.py"
