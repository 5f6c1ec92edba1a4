"""22 AI Agents & Tool Use: the model calling a calculator in a loop, constrained against free decoding."""

from __future__ import annotations

import datetime as dt
import json

import streamlit as st

from components import agents as view
from components.charts import draw_chart
from components.frame import intro, page_frame, show_code
from components.models import current_model_id
from components.preamble import model_page
from components.questions import check_yourself
from core import agents
from core.agents import calculator
from core.runtime import generation

page_frame()

with intro():
    st.markdown(
        "An **agent** is a model in a loop: it writes an *action* (a thought, a tool name and the "
        "tool's input), a program runs that tool and feeds the result back as an *observation*, and "
        "the model acts again until it gives a **final answer**, repeats itself (a call whose "
        "result it already has) or hits the **step limit**. Here the "
        "tools are a calculator, a search over the RAG page's Python documentation and a date tool. "
        "A 135M-parameter model rarely writes a valid action on its own, so **constrained decoding** "
        "turns the action's JSON schema into a grammar and, before each token, masks every token of "
        "the vocabulary that would break it: whatever the model prefers, the call parses. The program "
        "only ever reads the call as data; no text from you or the model is run as code."
    )

lm, _ = model_page(prompt=False)
model_id = current_model_id()
qs = agents.agent_questions()
OWN = "Write your own question…"
c1, c2 = st.columns([3, 2])
pick = c1.selectbox("Question", [q.question for q in qs] + [OWN], key="agents.pick")
question = pick
if pick == OWN:
    typed = c1.text_input(
        "Your question", key="agents.own", max_chars=20_000, placeholder="e.g. What is 19 * 21?"
    )
    question = " ".join(typed.split())[:300]
    if not question:
        st.info("The question is empty; using the first shipped question instead.")
        question = qs[0].question
    elif len(" ".join(typed.split())) > 300:
        st.info("Only the first 300 characters of the question are used.")
constrained = c2.toggle(
    "Constrained decoding (JSON grammar)", True, key="agents.constrained", bind="query-params"
)
inject = c2.toggle("Inject a tool error on the first call", False, key="agents.inject")
d1, d2, d3 = st.columns(3)
max_steps = d1.slider("Step limit (actions)", 1, 5, 3, key="agents.steps", bind="query-params")
temperature = d2.slider("Temperature (0 = greedy)", 0.0, 1.5, 0.0, 0.1, key="agents.temperature")
seed = int(d3.number_input("Seed", 0, 10_000, 0, key="agents.seed"))

run = view.agent_job(model_id, question, constrained, max_steps, inject, temperature, seed)
if run is not None:
    for step in run.steps:
        with st.container(border=True):
            s1, s2 = st.columns([3, 2])
            s1.markdown(view.step_header(step))
            if step.action is not None:
                s1.markdown("*Thought*")
                s1.text(step.action["thought"] or "(empty)")
                s1.markdown("*Tool call*")
                s1.code(
                    f"{step.action['tool']}({json.dumps(step.action['input'])})",
                    language=None,
                    wrap_lines=True,
                )
            else:
                s1.markdown("*What the model wrote* (not a valid call)")
                s1.code(step.raw or "(nothing)", language=None, wrap_lines=True)
            if step.observation:
                s2.markdown("**Observation** (from the program, not the model)")
                s2.text(step.observation)
    st.markdown(f"**Final answer** ({view.ENDINGS.get(run.ended_by, run.ended_by)}):")
    st.text(run.final_answer or "(empty)")
    st.caption(
        f"{len(run.steps)} action(s) in {run.seconds:.1f} s; the grammar's masks took "
        f"{run.mask_seconds * 1000:.0f} ms of it."
    )
    shown = [s for s in run.steps if s.tokens]
    if constrained and shown:
        pick_step = st.selectbox(
            "Grammar mask at each position of step",
            [s.number for s in shown],
            key="agents.mask_step",
        )
        step = next(s for s in shown if s.number == pick_step)
        df = view.mask_frame(step, lm.tokenizer)
        if len(df):
            vocab = step.tokens[0].masked.vocab
            draw_chart(view.mask_chart(df, vocab))
            st.caption(
                f"Orange bars: positions where the grammar overruled the model's first "
                f"choice ({int(df['forced'].sum())} of {len(df)}). Where one token is "
                "allowed, the grammar writes the JSON syntax itself."
            )
            st.dataframe(df, hide_index=True, width="stretch")
    elif not constrained:
        st.caption(
            "Free decoding: no mask, so nothing to show per position. Switch the "
            "constraint on to see it."
        )

st.subheader("How often it works: constrained against free decoding")
result = view.eval_job(model_id)
if result is not None:
    today = dt.date.today()
    scores = [agents.score_runs(runs, qs, today) for runs in result]
    st.dataframe(view.score_frame(scores), hide_index=True, width="stretch")
    with st.expander("Every question's run"):
        for label, runs in zip(("Constrained", "Free"), result):
            st.markdown(f"**{label}**")
            st.dataframe(view.runs_frame(runs, qs, today), hide_index=True, width="stretch")

st.subheader("The calculator refuses anything but arithmetic")
expr = st.text_input("Expression", "12 * (3 + 4) ** 2", key="agents.expr", max_chars=20_000)
calc = calculator.calculate(expr)
st.markdown("**Refused:**" if calc.error else "**Result:**")
st.code(calc.text, language=None, wrap_lines=True)
st.caption(
    f"Parsed with Python's ast module and walked by hand: numbers and `+ - * / // % **` only, "
    f"exponents up to {calculator.MAX_EXPONENT}, results up to {calculator.MAX_ABS:.0e}, "
    f"at most {calculator.MAX_CHARS} characters. Try `__import__('os')` or `9**9**9`."
)
show_code(agents.GrammarMask, generation.apply_mask, agents.run_agent, calculator.calculate)

check_yourself()
