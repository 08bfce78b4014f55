"""Shared test helpers: paths, the real CLI in a subprocess, and the ../shared acceptance suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SHARED = REPO.parent / "shared"
ACCEPTANCE = SHARED / "acceptance" / "tf1"
TEST_RULES = "tests.support.rewrite_rules"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="run tests marked slow")
    parser.addoption("--update-goldens", action="store_true",
                     help="rewrite the expected-output files of golden tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with `make test-slow` (pytest --run-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def update_goldens(request):
    return request.config.getoption("--update-goldens")


def cli_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


def run_cli(*args, input=None, cwd=None, env=None, timeout=120):
    """Run `python -m migrate ARGS` as a user would; returns CompletedProcess (bytes)."""
    return subprocess.run([sys.executable, "-m", "migrate", *map(str, args)], input=input,
                          cwd=cwd, env=env or cli_env(), capture_output=True, timeout=timeout)


@pytest.fixture
def acceptance_dir():
    if not ACCEPTANCE.is_dir():
        pytest.skip(f"../shared acceptance programs not found at {ACCEPTANCE} (a user's clone has no ../shared)")
    return ACCEPTANCE
