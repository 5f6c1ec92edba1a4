"""A tool-using agent loop on a small LM: thought, tool call, observation, final answer.

Each step the model writes one JSON action `{"thought", "tool", "input"}`. With constrained
decoding, llguidance turns the JSON schema into a grammar and, at every position, a mask of the
tokens that keep the text valid; `core.decoding.generate_stream` sets the others to -inf. The
program (never the model) then runs the named tool on the input as plain data: a calculator
that parses arithmetic only, a BM25 search over the RAG documents, and a date tool. Nothing a
user or the model writes is ever executed as code.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import torch

from core import rag
from core.agents.calculator import calculate
from core.runtime.generation import DecodingSettings, Step, generate_stream
from core.runtime.models import LoadedModel
from core.shared.corpus import DATA

TOOLS = ("calculator", "search", "date", "final_answer")
THOUGHT_MAX = 60  # characters: maxLength in the schema
INPUT_MAX = 60
CALL_BUDGET = 100  # tokens per action: above what the capped fields usually need
ANSWER_TOKENS = 24
SEARCH_CHUNK = (500, 50)  # the RAG page's default chunking
OBSERVATION_CHARS = 300
QUESTIONS_FILE = DATA / "agent_questions.json"

ACTION_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "thought": {"type": "string", "maxLength": THOUGHT_MAX},
        "tool": {"enum": list(TOOLS)},
        "input": {"type": "string", "maxLength": INPUT_MAX},
    },
    "required": ["thought", "tool", "input"],
    "additionalProperties": False,
}

SYSTEM = (
    "You answer questions by calling tools. Reply with one JSON object and nothing else: "
    '{"thought": "...", "tool": "...", "input": "..."}.\n'
    "Tools:\n"
    '- calculator: arithmetic on numbers, input like "12 * (3 + 4)"\n'
    '- search: searches the Python documentation, input like "dict get default"\n'
    '- date: today\'s date; input "today" or a date like "2025-01-31"\n'
    "- final_answer: input is your answer to the user\n"
    'Example: {"thought": "I need to multiply.", "tool": "calculator", "input": "12 * 4"}'
)


# --- tools -----------------------------------------------------------------------------------


def search_tool(query: str) -> str:
    """The best BM25 chunk of the Python documentation, shortened."""
    size, overlap = SEARCH_CHUNK
    chunks = rag.corpus_chunks(size, overlap)
    scores = rag.bm25_scores(rag.corpus_bm25(size, overlap), query)
    if not scores.any():
        return "No document matches those words."
    best = chunks[int(rag.ranking(scores)[0])]
    text = " ".join(best.text.split())
    return f"[{best.topic}] {text[:OBSERVATION_CHARS]}"


def date_tool(text: str, today: dt.date | None = None) -> str:
    """Today's date, or a given ISO date's weekday and distance from today."""
    today = today or dt.date.today()
    found = re.search(r"\d{4}-\d{2}-\d{2}", text)
    if not found:
        return f"Today is {today:%A}, {today.isoformat()}."
    try:
        day = dt.date.fromisoformat(found.group())
    except ValueError:
        return f"Error: {found.group()} is not a valid date."
    delta = (day - today).days
    return f"{day.isoformat()} is a {day:%A}, {abs(delta)} days {'after' if delta >= 0 else 'before'} today ({today.isoformat()})."


def run_tool(tool: str, tool_input: str, today: dt.date | None = None) -> str:
    """Dispatch by name to a fixed table: the input is data, never code."""
    if tool == "calculator":
        return calculate(tool_input).text
    if tool == "search":
        return search_tool(tool_input)
    if tool == "date":
        return date_tool(tool_input, today)
    return f"Error: unknown tool {tool[:40]!r}."


# --- parsing and validating actions ----------------------------------------------------------


def validate_action(obj: object) -> str:
    """'' when `obj` satisfies ACTION_SCHEMA, else the first reason it does not."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if set(obj) != set(ACTION_SCHEMA["required"]):
        return f"keys {sorted(obj)} instead of {ACTION_SCHEMA['required']}"
    if obj["tool"] not in TOOLS:
        return f"unknown tool {str(obj['tool'])[:40]!r}"
    for key, cap in (("thought", THOUGHT_MAX), ("input", INPUT_MAX)):
        if not isinstance(obj[key], str):
            return f"{key} is not a string"
        if len(obj[key]) > cap:
            return f"{key} longer than {cap} characters"
    return ""


def parse_action(text: str) -> tuple[dict | None, str]:
    """The first JSON object in the text (json.loads: data only), and '' or why it is invalid."""
    start = text.find("{")
    if start < 0:
        return None, "no JSON object in the reply"
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        return None, f"not valid JSON ({str(exc)[:80]})"
    problem = validate_action(obj)
    return (obj if not problem else None), problem


# --- grammar-constrained decoding with llguidance --------------------------------------------

# A per-process resource kept outside the caching rule's Streamlit caches because core never
# imports streamlit: at most LL_KEEP tokenizers' views (one per loaded model), each checked to
# belong to the very tokenizer object asking (an id alone can be reused after a model is freed).
_LL_LOCK = threading.Lock()
_LL_TOKENIZERS: dict[int, tuple[weakref.ref, object]] = {}
LL_KEEP = 4


def ll_tokenizer(lm: LoadedModel) -> object:
    """llguidance's view of the model's tokenizer: built once per tokenizer (about a second)."""
    import llguidance.hf

    with _LL_LOCK:
        key = id(lm.tokenizer)
        found = _LL_TOKENIZERS.get(key)
        if found is None or found[0]() is not lm.tokenizer:
            view = llguidance.hf.from_tokenizer(
                lm.tokenizer, n_vocab=int(lm.model.config.vocab_size)
            )
            _LL_TOKENIZERS.pop(key, None)
            while len(_LL_TOKENIZERS) >= LL_KEEP:
                del _LL_TOKENIZERS[next(iter(_LL_TOKENIZERS))]  # the oldest
            _LL_TOKENIZERS[key] = (weakref.ref(lm.tokenizer), view)
        return _LL_TOKENIZERS[key][1]


@lru_cache(maxsize=4)  # tiny and bounded: a grammar string per schema (there is one)
def action_grammar(schema_json: str = json.dumps(ACTION_SCHEMA)) -> str:
    import llguidance

    schema = {**json.loads(schema_json), "x-guidance": {"whitespace_flexible": False}}
    return llguidance.grammar_from("json_schema", json.dumps(schema))


class GrammarMask:
    """A TokenMask for generate_stream: feeds the new tokens to a matcher, returns its mask."""

    def __init__(self, lm: LoadedModel, prompt_len: int, grammar: str | None = None) -> None:
        import llguidance

        self.matcher = llguidance.LLMatcher(ll_tokenizer(lm), grammar or action_grammar())
        if self.matcher.is_error():
            raise ValueError(self.matcher.get_error())
        self.consumed = prompt_len
        self.vocab = int(lm.model.config.vocab_size)
        self.seconds = 0.0  # time spent computing masks, for the benchmark

    def __call__(self, ids: Sequence[int]) -> torch.Tensor | None:
        start = time.perf_counter()
        for token in ids[self.consumed :]:
            self.matcher.consume_token(int(token))
        self.consumed = len(ids)
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: self.vocab].astype(bool)
        self.seconds += time.perf_counter() - start
        return torch.from_numpy(allowed)

    @property
    def accepting(self) -> bool:
        return self.matcher.is_accepting() or self.matcher.is_stopped()


# --- the loop --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentStep:
    number: int
    raw: str  # what the model wrote
    action: dict | None  # the parsed, valid action
    status: str  # "valid", "invalid: ...", "stopped by budget"
    observation: str  # the tool's result (or the error the loop fed back)
    injected_error: bool
    tokens: tuple[Step, ...] = field(repr=False)


@dataclass(frozen=True)
class AgentRun:
    question: str
    constrained: bool
    steps: tuple[AgentStep, ...]
    final_answer: str
    ended_by: str  # "final_answer", "repeated", "step limit"
    seconds: float
    mask_seconds: float

    @property
    def calls(self) -> tuple[AgentStep, ...]:
        return self.steps


INJECTED_ERROR = "Error: the tool service timed out (an error injected by this page). Try again."


def agent_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def chat_ids(lm: LoadedModel, messages: list[dict[str, str]], prefill: str = "") -> list[int]:
    messages = [
        {**m, "content": rag.neutralise_special_tokens(m["content"], lm.tokenizer)}
        for m in messages
    ]
    text = lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(lm.tokenizer(text + prefill, add_special_tokens=False)["input_ids"])


def _decode(lm: LoadedModel, steps: Sequence[Step]) -> str:
    special = set(getattr(lm.tokenizer, "all_special_ids", []) or [])
    return lm.tokenizer.decode([s.token_id for s in steps if s.token_id not in special])


def generate_action(
    lm: LoadedModel, messages: list[dict[str, str]], constrained: bool, settings: DecodingSettings
) -> tuple[str, dict | None, str, tuple[Step, ...], float]:
    """One action: (text, valid action or None, status, token steps, seconds in the mask)."""
    ids = chat_ids(lm, messages)
    mask = GrammarMask(lm, len(ids)) if constrained else None
    steps = tuple(generate_stream(lm, ids, settings, mask=mask))
    text = _decode(lm, steps).strip()
    eos_hit = bool(steps) and steps[-1].token_id in set(_eos(lm))
    action, problem = parse_action(text)
    if action is not None:
        status = "valid"
    elif not eos_hit and len(steps) >= settings.max_new_tokens:
        status = "stopped by budget"
    else:
        status = f"invalid: {problem}"
    return text, action, status, steps, mask.seconds if mask else 0.0


def _eos(lm: LoadedModel) -> list[int]:
    eos = lm.model.generation_config.eos_token_id
    eos = lm.tokenizer.eos_token_id if eos is None else eos
    return [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))


def final_answer(lm: LoadedModel, messages: list[dict[str, str]]) -> str:
    """A free-text answer with 'The answer is' prefilled, greedy, after the observations."""
    msgs = messages + [{"role": "user", "content": "Now give your final answer in one sentence."}]
    prefill = "The answer is"
    ids = chat_ids(lm, msgs, prefill)
    steps = list(
        generate_stream(lm, ids, DecodingSettings(temperature=0.0, max_new_tokens=ANSWER_TOKENS))
    )
    return (prefill + _decode(lm, steps)).strip()


def run_agent(
    lm: LoadedModel,
    question: str,
    *,
    constrained: bool = True,
    max_steps: int = 3,
    inject_error: bool = False,
    settings: DecodingSettings | None = None,
    today: dt.date | None = None,
    on_step: Callable[[AgentStep], None] | None = None,
) -> AgentRun:
    """The loop: act, observe, repeat until final_answer, a call that brings nothing new
    (its observation repeats an earlier one: a small model re-calls calculator("391") with its
    own result until the step limit), or the step limit. Both of the last two end with the
    answer prefilled with 'The answer is'."""
    s = settings or DecodingSettings(temperature=0.0)
    s = replace(s, max_new_tokens=CALL_BUDGET)
    messages = agent_messages(question)
    steps: list[AgentStep] = []
    start, mask_s = time.perf_counter(), 0.0
    for n in range(1, max_steps + 1):
        text, action, status, tokens, m_s = generate_action(lm, messages, constrained, s)
        mask_s += m_s
        injected = (
            inject_error and n == 1 and action is not None and action["tool"] != "final_answer"
        )
        if action is None:
            observation = f"Error: that reply was not a valid tool call ({status})."
        elif action["tool"] == "final_answer":
            observation = ""
        elif injected:
            observation = INJECTED_ERROR
        else:
            observation = run_tool(action["tool"], action["input"], today)
        step = AgentStep(n, text, action, status, observation, injected, tokens)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        repeated = (
            action is not None
            and action["tool"] != "final_answer"
            and not injected
            and observation in [s.observation for s in steps[:-1]]
        )
        if repeated:
            messages = messages + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"Observation: {observation}"},
            ]
            return AgentRun(
                question,
                constrained,
                tuple(steps),
                final_answer(lm, messages),
                "repeated",
                time.perf_counter() - start,
                mask_s,
            )
        if action is not None and action["tool"] == "final_answer":
            answer = action["input"]
            return AgentRun(
                question,
                constrained,
                tuple(steps),
                answer,
                "final_answer",
                time.perf_counter() - start,
                mask_s,
            )
        messages = messages + [
            {"role": "assistant", "content": text},
            {"role": "user", "content": f"Observation: {observation}"},
        ]
    answer = final_answer(lm, messages)
    return AgentRun(
        question,
        constrained,
        tuple(steps),
        answer,
        "step limit",
        time.perf_counter() - start,
        mask_s,
    )


# --- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentQuestion:
    question: str
    tool: str  # the tool a good first call uses
    expected: str  # a string a right final answer contains ("{today}" is filled in)


@lru_cache(maxsize=1)  # a parsed data file: a per-process constant
def agent_questions() -> tuple[AgentQuestion, ...]:
    items = json.loads(QUESTIONS_FILE.read_text(encoding="utf-8"))["questions"]
    return tuple(AgentQuestion(**q) for q in items)


def expected_text(q: AgentQuestion, today: dt.date) -> str:
    return q.expected.replace("{today}", today.isoformat()).replace("{weekday}", f"{today:%A}")


def answer_is_right(answer: str, expected: str) -> bool:
    """Contains the expected string; numbers compare with thousands separators removed."""
    return expected.lower() in answer.lower().replace(",", "")


@dataclass(frozen=True)
class AgentScore:
    constrained: bool
    runs: int
    valid_calls: int
    calls: int
    budget_stops: int
    right_tool: int  # first call used the question's tool
    right_answer: int
    seconds_per_run: float


def score_runs(
    runs: Sequence[AgentRun], questions: Sequence[AgentQuestion], today: dt.date
) -> AgentScore:
    calls = [s for r in runs for s in r.steps]
    right_tool = sum(
        1
        for r, q in zip(runs, questions)
        if r.steps and r.steps[0].action and r.steps[0].action["tool"] == q.tool
    )
    right = sum(
        1
        for r, q in zip(runs, questions)
        if answer_is_right(r.final_answer, expected_text(q, today))
    )
    return AgentScore(
        constrained=bool(runs and runs[0].constrained),
        runs=len(runs),
        valid_calls=sum(1 for s in calls if s.status == "valid"),
        calls=len(calls),
        budget_stops=sum(1 for s in calls if s.status == "stopped by budget"),
        right_tool=right_tool,
        right_answer=right,
        seconds_per_run=float(np.mean([r.seconds for r in runs])) if runs else 0.0,
    )
