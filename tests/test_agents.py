"""Agents: the safe calculator, the tools, constrained tool calls that always parse, the token
mask in the one generation door, scores recomputed from stored runs, and the page."""

from __future__ import annotations

import ast
import datetime as dt
import operator
import random
from pathlib import Path

import pytest
import torch

from core import agents
from core.agents.calculator import calculate
from core.runtime.generation import DecodingSettings, generate_stream

ROOT = Path(__file__).resolve().parent.parent

ATTACKS = [
    "__import__('os').system('touch /tmp/llm_explorer_pwned')",
    "(1).__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "[1] * 10**9",
    "9**9**9",
    "10**10**10",
    "'a' * 10**9",
    "'x' * 100",
    "lambda: 1",
    "x + 1",
    "[i for i in range(10**9)]",
    "{1: 2}",
    "(1, 2)",
    "1 if 1 else 2",
    "f'{1}'",
    "1 < 2",
    "abs(-1)",
    "2 ** 1000",
    "1e308 * 10",
    "(-8) ** 0.5",
    "1" * 5000,
    "(" * 200 + "1" + ")" * 200,
    "True + 1",
    "",
    "1; import os",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_calculator_refuses_the_attack_list(text):
    result = calculate(text)
    assert result.error and result.value is None
    assert result.text.startswith("Error:")
    assert not Path("/tmp/llm_explorer_pwned").exists()


def _random_expression(rng: random.Random, depth: int) -> tuple[str, float]:
    """An arithmetic string and its value, built together (the reference never parses text)."""
    if depth == 0 or rng.random() < 0.3:
        v = rng.randint(0, 50)
        return str(v), v
    ops = [("+", operator.add), ("-", operator.sub), ("*", operator.mul), ("/", operator.truediv)]
    sym, fn = rng.choice(ops)
    (a, va), (b, vb) = _random_expression(rng, depth - 1), _random_expression(rng, depth - 1)
    if sym == "/" and vb == 0:
        sym, fn = "+", operator.add
    return f"({a} {sym} {b})", fn(va, vb)


def test_calculator_computes_arithmetic_right():
    rng = random.Random(0)
    for _ in range(300):
        text, value = _random_expression(rng, 4)
        got = calculate(text)
        assert not got.error, (text, got.error)
        assert got.value == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert calculate("17 * 23").text == "391"
    assert calculate("2 ** 10").text == "1024"
    assert calculate("7 // 2").value == 3 and calculate("7 % 3").value == 1
    assert calculate("-3 ** 2").value == -9  # Python's precedence: -(3 ** 2)
    assert calculate("10 / 0").error == "division by zero"


def test_no_eval_or_exec_in_the_tool_code():
    for module in ("core/agents/calculator.py", "core/agents/__init__.py"):
        tree = ast.parse((ROOT / module).read_text())
        called = {
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not called & {"eval", "exec", "compile", "__import__"}, module


def test_tools_treat_input_as_data():
    today = dt.date(2026, 1, 15)
    assert agents.run_tool("date", "today", today) == "Today is Thursday, 2026-01-15."
    assert "is a Friday, 1 days after today" in agents.run_tool("date", "2026-01-16", today)
    assert agents.run_tool("date", "2026-02-30", today).startswith("Error")
    assert agents.run_tool("search", "ZeroDivisionError division by zero").startswith("[binary]")
    assert agents.run_tool("calculator", "__import__('os')").startswith("Error")
    assert agents.run_tool("shell", "rm -rf /").startswith("Error: unknown tool")


def test_parse_and_validate_actions():
    ok = '{"thought": "multiply", "tool": "calculator", "input": "17 * 23"}'
    assert agents.parse_action("Sure! " + ok + " done")[0]["input"] == "17 * 23"
    assert agents.parse_action("The answer is 391.")[1] == "no JSON object in the reply"
    assert "unknown tool" in agents.parse_action(ok.replace("calculator", "python"))[1]
    assert "longer than" in agents.parse_action(ok.replace("17 * 23", "1" * 61))[1]
    assert "keys" in agents.parse_action('{"tool": "date", "input": ""}')[1]


def test_a_token_mask_in_the_generation_door(lm):
    ids = lm.tokenizer("The capital of France is", add_special_tokens=False)["input_ids"]
    only = lm.tokenizer(" Berlin", add_special_tokens=False)["input_ids"][0]
    allowed = torch.zeros(lm.model.config.vocab_size, dtype=torch.bool)
    allowed[only] = True
    seen: list[int] = []

    def mask(so_far):
        seen.append(len(so_far))
        return allowed

    steps = list(
        generate_stream(
            lm,
            ids,
            DecodingSettings(temperature=1.0, max_new_tokens=3, stop_at_eos=False),
            mask=mask,
        )
    )
    assert [s.token_id for s in steps] == [only] * 3
    assert seen == [len(ids), len(ids) + 1, len(ids) + 2]  # asked once per position
    view = steps[0].masked
    assert view.allowed == 1 and view.top_after == pytest.approx(1.0)
    assert view.top_before < 1.0 and view.wanted_id != only
    free = list(generate_stream(lm, ids, DecodingSettings(temperature=0.0, max_new_tokens=2)))
    assert all(s.masked is None for s in free)


def test_constrained_calls_always_parse_under_sampling(lm):
    msgs = agents.agent_messages("What is 17 times 23?")
    for seed in range(3):
        s = DecodingSettings(temperature=1.3, seed=seed, max_new_tokens=agents.CALL_BUDGET)
        text, action, status, steps, _ = agents.generate_action(lm, msgs, True, s)
        assert status in ("valid", "stopped by budget"), (seed, text)
        if status == "valid":
            assert agents.validate_action(action) == ""
        allowed = [st.masked.allowed for st in steps if st.masked]
        assert min(allowed) == 1  # the grammar writes the syntax itself somewhere
        assert max(allowed) < lm.model.config.vocab_size


def test_scores_recomputed_from_stored_runs():
    def step(tool, status="valid"):
        action = {"thought": "", "tool": tool, "input": "1"} if status == "valid" else None
        return agents.AgentStep(1, "", action, status, "", False, ())

    qs = agents.agent_questions()[:2]
    runs = [
        agents.AgentRun(
            qs[0].question,
            True,
            (step("calculator"),),
            "The answer is 391.",
            "step limit",
            2.0,
            0.01,
        ),
        agents.AgentRun(
            qs[1].question,
            True,
            (step("", "stopped by budget"),),
            "no idea",
            "step limit",
            4.0,
            0.01,
        ),
    ]
    score = agents.score_runs(runs, qs, dt.date(2026, 1, 1))
    assert (score.valid_calls, score.calls, score.budget_stops) == (1, 2, 1)
    assert (score.right_tool, score.right_answer) == (1, 1)
    assert score.seconds_per_run == pytest.approx(3.0)


# --- the page --------------------------------------------------------------------------------


def test_page(monkeypatch):
    from apptest_util import chart_frames, open_page

    monkeypatch.setattr(agents, "ANSWER_TOKENS", 4)  # the loop, not a long answer, is tested
    at = open_page("pages/22_agents.py")
    assert not at.exception, at.exception
    at.text_input(key="agents.expr").set_value("__import__('os').system('ls')").run()
    assert any("Refused" in m.value for m in at.markdown)
    at.text_input(key="agents.expr").set_value("17 * 23").run()
    assert any(c.value == "391" for c in at.code)

    at.slider(key="agents.steps").set_value(1).run()
    next(b for b in at.button if b.label.startswith("Run the agent")).click().run(timeout=1200)
    assert not at.exception, at.exception
    assert any("Step 1" in m.value for m in at.markdown)
    mask = chart_frames(at)[0]
    allowed = mask[0]["allowed"]
    assert allowed.min() == 1 and allowed.max() < 49152  # the grammar narrows every position
    assert any("Final answer" in m.value for m in at.markdown)


def test_page_bad_question_input():
    from apptest_util import open_page

    at = open_page("pages/22_agents.py")
    at.selectbox(key="agents.pick").set_value("Write your own question…").run()
    for text in ["", "<|im_start|>system $x$ <script>x</script> 你好 🙂", "b" * 20_000]:
        at.text_input(key="agents.own").set_value(text).run()
        assert not at.exception, at.exception


def test_step_header_keeps_the_models_text_literal():
    """Free decoding quotes the model's invalid tool name in the step's header: `$x^2$` must
    not be typeset nor `**b**` made bold, nor `:red[x]` coloured."""
    import re

    from components.agents import step_header
    from core.agents import AgentStep

    status = "invalid: unknown tool '$x^2$ **b** :red[x] <b>h</b>'"
    step = AgentStep(1, "raw", None, status, "", False, ())
    header = step_header(step)
    assert header.startswith("**Step 1** · ")
    body = header.removeprefix("**Step 1** · ")
    assert re.sub(r"\\(.)", r"\1", body) == status  # unescaped, it is the status verbatim
    for special in "$*[]<>:":
        assert not re.search(r"(?<!\\)" + re.escape(special), body), special


def test_default_run_reaches_an_answer_before_the_step_limit(lm):
    """The page's defaults (first question, constrained, 3 steps, greedy): SmolLM2 computes
    17 * 23, then re-calls calculator("391") with its own result; the loop sees nothing new
    and asks for the answer instead of spending every step (it never answered before)."""
    from core.runtime.generation import DecodingSettings

    q = agents.agent_questions()[0]
    run = agents.run_agent(
        lm, q.question, constrained=True, max_steps=3, settings=DecodingSettings(temperature=0.0)
    )
    assert run.ended_by in ("final_answer", "repeated"), [s.action for s in run.steps]
    assert len(run.steps) < 3
    assert q.expected in run.final_answer
    observations = [s.observation for s in run.steps]
    if run.ended_by == "repeated":  # the last call's result repeats an earlier one
        assert observations[-1] in observations[:-1]


def test_grammar_mask_bars_never_put_zero_on_their_log_scale():
    # The bars of allowed tokens started at zero on a log scale: Vega-Lite warned "Log scale
    # domain includes zero: [0,48775]" and the chart stayed empty.
    import pandas as pd

    from components.agents import mask_chart

    df = pd.DataFrame(
        {
            "position": [1, 2],
            "token": ['{"', "x"],
            "allowed": [1, 48775],
            "forced": [True, False],
            "model's first choice": ["{", "x"],
            "top p before mask": [0.4, 0.9],
            "top p after mask": [1.0, 0.9],
        }
    )
    bars = mask_chart(df, 49152).to_dict()["vconcat"][0]
    enc = bars["encoding"]
    lo, hi = enc["y"]["scale"]["domain"]
    assert enc["y"]["scale"]["type"] == "log" and 0 < lo < 1 and hi == 49152
    assert enc["y2"]["datum"] == lo  # every bar, one allowed token included, starts above 0
