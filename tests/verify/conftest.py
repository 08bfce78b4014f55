"""Fixtures of the verify tests; helpers live in verify_helpers.py."""
import os

import pytest

from verify_helpers import SHARED


@pytest.fixture(scope="session")
def shared_dir():
    if not os.path.isdir(os.path.join(SHARED, "acceptance", "tf1")):
        pytest.skip("../shared/acceptance is absent in this checkout: acceptance checks skipped")
    return SHARED
