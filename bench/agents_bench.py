"""Page 22 (agents): first render, the grammar mask's cost per token, one agent loop."""

from __future__ import annotations

from bench.common import Row, note, seconds


def rows() -> list[Row]:
    from bench.rag_bench import first_render
    from core import agents
    from core.runtime.generation import DecodingSettings
    from core.runtime.models import load_embedded

    out: list[Row] = []
    note("agents: first render of page 22")
    page, home = first_render("pages/22_agents.py")
    out.append(
        Row(
            "Page 22 (agents) render, models warm (AppTest)",
            seconds(page),
            f"home page: {seconds(home)}",
            f"{page / home:.1f}x",
        )
    )

    lm = load_embedded()
    agents.ll_tokenizer(lm)  # built once per process; not part of a call
    msgs = agents.agent_messages("What is 17 times 23?")
    s = DecodingSettings(temperature=0.0, max_new_tokens=agents.CALL_BUDGET)
    note("agents: one constrained tool call")
    _, _, status, steps, mask_s = agents.generate_action(lm, msgs, True, s)
    step_s = sum(t.seconds for t in steps) - mask_s
    n = max(len(steps), 1)
    out.append(
        Row(
            f"Grammar mask per token (llguidance, {len(steps)} tokens, {status})",
            f"{mask_s / n * 1000:.2f} ms",
            f"decode step: {step_s / n * 1000:.0f} ms",
            f"{mask_s / max(step_s, 1e-9):.1%} of decode",
        )
    )

    note("agents: one loop (one action, observation, final answer), constrained and free")
    on = agents.run_agent(lm, "What is 17 times 23?", constrained=True, max_steps=1)
    off = agents.run_agent(lm, "What is 17 times 23?", constrained=False, max_steps=1)
    out.append(
        Row(
            f"Agent loop, constrained ({on.steps[0].status}; answer: {on.final_answer[:40]!r})",
            seconds(on.seconds),
            f"free ({off.steps[0].status[:30]}): {seconds(off.seconds)}",
            f"{on.seconds / off.seconds:.1f}x",
        )
    )
    return out
