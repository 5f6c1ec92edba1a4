"""Page 16: the loss mask against transformers' own assistant mask, the masked loss against the
model's loss, LoRA's parameter count against peft, a short fine-tune, and the page itself."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from core import fine_tuning as ft

# SmolLM2's ChatML template with the assistant's answer and end marker tagged as `generation`,
# so transformers can compute its own assistant mask (the shipped template has no such tag).
TAGGED = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\n' }}{% else %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _reference_mask(tok, messages):
    out = tok.apply_chat_template(
        messages,
        chat_template=TAGGED,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return list(out["input_ids"]), [bool(m) for m in out["assistant_masks"]]


def test_loss_mask_equals_transformers_assistant_mask(lm):
    tok = lm.tokenizer
    data = ft.load_data()
    two_turns = [*ft.conversation(*data.examples[0]), *ft.conversation(*data.examples[1])]
    chats = [ft.conversation(u, a) for u, a in data.examples] + [two_turns]
    for messages in chats:
        assert tok.apply_chat_template(messages, chat_template=TAGGED, tokenize=False) == ft.render(
            tok, messages, False
        )  # the tagged template is the model's own
        got = ft.masked_chat(tok, messages)
        ids, mask = _reference_mask(tok, messages)
        assert list(got.ids) == ids
        assert list(got.mask) == mask
        assert 0 < got.counted < len(got.ids)
    assert sum(ft.masked_chat(tok, two_turns).mask) == sum(
        ft.masked_chat(tok, ft.conversation(*e)).counted for e in data.examples[:2]
    )


def test_loss_mask_survives_odd_text(lm):
    for text in ["", "emoji 🤖 and 中文", "<b>html</b> $x$", "x" * 5000, "<|im_start|>user"]:
        chat = ft.masked_chat(lm.tokenizer, ft.conversation(text, text or "ok"))
        assert chat.counted >= 1  # at least the end-of-turn marker
    assert ft.special_tokens_in(lm.tokenizer, "hi <|im_end|>") == ["<|im_end|>"]
    assert ft.special_tokens_in(lm.tokenizer, "plain") == []


def test_masked_loss_equals_model_loss_with_ignored_labels(lm):
    chat = ft.masked_chat(lm.tokenizer, ft.conversation(*ft.load_data().examples[0]))
    ids = torch.tensor([chat.ids])
    mask = torch.tensor([chat.mask])
    labels = ids.masked_fill(~mask, -100)
    with torch.inference_mode():
        out = lm.model(ids, labels=labels)
        ours = ft.masked_lm_loss(out.logits, ids, mask)
    assert float(ours) == pytest.approx(float(out.loss), rel=1e-5)


def _tiny(kind: str):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(
            GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=64)
        ).eval()
    return LlamaForCausalLM(
        LlamaConfig(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            hidden_size=32,
            intermediate_size=48,
            vocab_size=64,
        )
    ).eval()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("rank", [1, 4])
def test_lora_count_equals_peft_trainable_parameters(kind, rank):
    from peft import LoraConfig, get_peft_model

    model = _tiny(kind)
    modules = ft.adaptable_modules(model)
    targets = tuple(m.name for m in modules)[:3]
    formula = ft.lora_parameter_formula(model, targets, rank)
    peft_model = get_peft_model(
        copy.deepcopy(model),
        LoraConfig(r=rank, target_modules=list(targets), task_type="CAUSAL_LM"),
    )
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert formula == trainable > 0


def test_lora_count_on_smollm_is_the_measured_figure(lm):
    targets = ft.default_targets(ft.adaptable_modules(lm.model))
    assert targets == ("self_attn.q_proj", "self_attn.v_proj")
    # q: 576 -> 576, v: 576 -> 192 (3 key/value heads of 64), 30 blocks: 460,800 at r = 8
    assert ft.lora_parameter_formula(lm.model, targets, 8) == 8 * (576 + 576 + 576 + 192) * 30


def test_fine_tune_lowers_the_loss_and_leaves_the_model_alone(lm):
    from core.runtime.models import LoadedModel

    tiny = _tiny("llama")
    tiny.config.vocab_size = 64
    tok = copy.copy(lm.tokenizer)
    small = LoadedModel("tiny", tiny, _ModTokenizer(tok, 64), "test")
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    data = ft.load_data()
    data = ft.FineTuneData(data.examples[:2], data.held_out[:1], data.style, data.marker)
    s = ft.LoraSettings(
        rank=4,
        targets=("self_attn.q_proj", "self_attn.v_proj"),
        steps=8,
        learning_rate=3e-2,
        batch=2,
        answer_tokens=3,
    )
    seen = []
    result = ft.fine_tune(small, data, s, lambda f, t="", partial=None: seen.append(partial))
    assert result.losses[-1] < result.losses[0]
    assert seen[-1] == result.losses
    assert result.trainable == ft.lora_parameter_formula(tiny, s.targets, 4)
    assert result.shared_unchanged
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in before.items())
    assert not any("lora" in name for name, _ in tiny.named_modules())
    assert sum(v.numel() for v in result.adapter.values()) == result.trainable
    assert not ft.FINE_TUNE_LOCK.locked()


class _ModTokenizer:
    """SmolLM2's tokenizer with ids folded into a tiny vocabulary (the template stays real)."""

    def __init__(self, tok, vocab):
        self.tok, self.vocab = tok, vocab
        self.chat_template = tok.chat_template
        self.pad_token_id = 0

    def apply_chat_template(self, *a, **k):
        return self.tok.apply_chat_template(*a, **k)

    def __call__(self, text, **k):
        return {"input_ids": [i % self.vocab for i in self.tok(text, **k)["input_ids"]]}

    def decode(self, ids, **k):
        return " ".join(str(i) for i in ids)


def test_data_file_is_well_formed():
    raw = json.loads(ft.DATA.read_text())
    assert 8 <= len(raw["examples"]) <= 16 and raw["held_out"]
    trained = {e["user"] for e in raw["examples"]}
    assert not trained & set(raw["held_out"])
    assert all(raw["marker"] in e["assistant"] for e in raw["examples"])


def test_page_shows_mask_and_fine_tunes_a_copy():
    from apptest_util import chart_frames, open_page

    at = open_page("pages/16_fine_tuning.py")
    assert not at.exception, at.exception
    shares = {m.label: m.value for m in at.metric}
    assert shares["Counted by the loss"].endswith("%)")
    assert shares["Trainable LoRA parameters"] == "460,800"
    at.select_slider(key="fine_tuning.rank").set_value(1).run()
    assert {m.label: m.value for m in at.metric}["Trainable LoRA parameters"] == "57,600"
    at.slider(key="fine_tuning.steps").set_value(5).run()
    at.text_input(key="fine_tuning.request").set_value("").run()
    assert not at.exception
    assert any("empty" in i.value for i in at.info)
    at.text_input(key="fine_tuning.request").set_value("hi <|im_start|>assistant $5 🤖").run()
    assert not at.exception
    assert any("<|im_start|>" in w.value for w in at.warning)
    at.multiselect(key="fine_tuning.targets").set_value([]).run()
    assert any("at least one" in w.value for w in at.warning)
    at.multiselect(key="fine_tuning.targets").set_value(["self_attn.q_proj", "self_attn.v_proj"])
    at.run()
    start = [b for b in at.button if b.label.startswith("Fine-tune a copy with LoRA")]
    assert start
    start[0].click().run()
    assert not at.exception, at.exception
    got = {m.label: m.value for m in at.metric}
    assert got["Trainable (counted by peft)"] == "57,600"
    losses = chart_frames(at)[-1][0]["loss"]
    assert len(losses) == 5 and losses.iloc[-1] < losses.iloc[0]
    assert any("unchanged afterwards: yes" in c.value for c in at.caption)
    # A second fine-tune with other settings in the same process (it used to crash with
    # CacheReplayClosureError: see test_second_fine_tune_with_other_settings_in_the_same_process).
    at.slider(key="fine_tuning.steps").set_value(10).run()
    [b for b in at.button if b.label.startswith("Fine-tune a copy with LoRA")][0].click().run()
    assert not at.exception, at.exception
    assert len(chart_frames(at)[-1][0]["loss"]) == 10


def test_base_model_without_template_falls_back_to_chatml(lm):
    class NoTemplate(_ModTokenizer):
        def __init__(self, tok):
            super().__init__(tok, 10**9)
            self.chat_template = None

    tok = NoTemplate(lm.tokenizer)
    assert ft.template_of(tok) == (ft.FALLBACK_TEMPLATE, False)
    assert ft.template_problem(tok) is None
    text = ft.render(tok, ft.conversation("Hi", "Hello!"), False)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    chat = ft.masked_chat(tok, ft.conversation("Hi", "Hello!"))
    assert lm.tokenizer.decode([i for i, m in zip(chat.ids, chat.mask) if m]) == "Hello!<|im_end|>"


def _tiny_setup(lm):
    from core.runtime.models import LoadedModel

    tiny = _tiny("llama")
    small = LoadedModel("tiny", tiny, _ModTokenizer(copy.copy(lm.tokenizer), 64), "test")
    data = ft.load_data()
    data = ft.FineTuneData(data.examples[:2], data.held_out[:2], data.style, data.marker)
    s = ft.LoraSettings(rank=2, targets=("self_attn.q_proj",), steps=4, batch=2, answer_tokens=3)
    return small, data, s


def test_original_answers_are_part_of_the_fine_tunes_turn_and_move_the_bar(lm):
    """The one-at-a-time lock is held from the original model's answers on (a second learner
    sees the busy note from the first second), and those answers move the bar off 0."""
    small, data, s = _tiny_setup(lm)
    held_during_before = []
    reports: list[tuple[float, str]] = []

    def before(report):
        held_during_before.append(ft.FINE_TUNE_LOCK.locked())
        return ft.held_out_answers(small, data, s.answer_tokens, report)

    ft.fine_tune(small, data, s, lambda f, t="", partial=None: reports.append((f, t)), before)
    assert held_during_before == [True]
    original = [f for f, t in reports if "(original model)" in t]
    training = [f for f, t in reports if t.startswith("Step ")]
    assert original and max(original) > 0  # the bar moves during the first phase
    assert max(original) <= min(training)
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert not ft.FINE_TUNE_LOCK.locked()


@pytest.fixture(scope="module")
def tiny_gpt2_folder(tmp_path_factory):
    """A randomly initialised 2-layer GPT-2 with GPT-2's tokenizer, saved to a folder."""
    from reference_tokenizers import hf_gpt2
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2-fine-tune")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=256)).save_pretrained(
        folder
    )
    hf_gpt2().tok.save_pretrained(folder)
    return str(folder)


def _fine_tune_twice_script(model_id: str):
    import streamlit as st

    from components import fine_tuning as view
    from core import fine_tuning as ft

    steps = st.number_input("steps", 1, 20, 2, key="steps")
    s = ft.LoraSettings(rank=1, targets=("attn.c_attn",), steps=int(steps), batch=2)
    result = view.fine_tune_job(model_id, s)
    st.text(f"losses={len(result.losses) if result else None}")


def test_second_fine_tune_with_other_settings_in_the_same_process(tiny_gpt2_folder, monkeypatch):
    """Fails before the fix with CacheReplayClosureError on the second run: the original
    model's answers were an st.cache_resource whose body moved the first run's progress bar."""
    from streamlit.testing.v1 import AppTest

    from core.runtime import models

    monkeypatch.setenv(models.ALLOW_LOCAL_ENV, "1")
    at = AppTest.from_function(
        _fine_tune_twice_script, args=(tiny_gpt2_folder,), default_timeout=120
    )
    at.run()
    for steps in (2, 3):
        at.number_input(key="steps").set_value(steps).run()
        [b for b in at.button if b.label.startswith("Fine-tune a copy")][0].click().run()
        assert not at.exception, at.exception
        assert f"losses={steps}" in [t.value for t in at.text]


def test_bare_text_that_stops_at_once_is_shown_forced_past_its_end_of_turn(lm):
    """On the default request SmolLM2 ends the bare text at once (an empty answer): the page
    then also shows the continuation with end-of-turn forbidden, so there is text to read."""
    request = ft.load_data().held_out[0]
    got = ft.compare_template(lm, request, max_new_tokens=8)
    if got.plain_answer.strip():  # a model that does continue bare text needs no second try
        assert got.plain_forced == ""
        return
    assert got.plain_forced.strip()
    ids = lm.tokenizer(got.plain_forced, add_special_tokens=False)["input_ids"]
    assert not set(ids) & set(lm.tokenizer.all_special_ids)
