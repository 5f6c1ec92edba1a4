from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def lm():
    from core.models import load_embedded

    return load_embedded()


@pytest.fixture(scope="session")
def encoder():
    from core.models import load_encoder

    return load_encoder()
