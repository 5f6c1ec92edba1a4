"""RLHF: preference table, reward-model jobs and charts, best-of-n, KL, DPO."""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from components.charts import draw_chart, fitting_columns
from components.jobs import finished_result, run_job
from components.models import load_model
from core import rlhf

# One LM forward per answer on 2 shared cores (~40 tokens each), and one sampled token; both
# measured while the machine was busy with other jobs: estimates, not promises.
ANSWER_SECONDS = 0.35
TOKEN_SECONDS = 0.08
SAMPLE_TOKENS = 24
N_MAX = 16


def reading_estimate_s(answers: int) -> float:
    return answers * ANSWER_SECONDS


def sampling_estimate_s(n: int) -> float:
    return n * (SAMPLE_TOKENS * TOKEN_SECONDS + ANSWER_SECONDS)


# L2 penalty of the reward head: 576 features and 24 pairs overfit without it (training loss
# 0.02, rewards spread over +-20); 0.3 kept 7 of 8 held-out pairs right with rewards within +-8.
WEIGHT_DECAY = 0.3


@st.cache_resource(show_spinner=False)
def cached_pairs() -> rlhf.PreferenceData:
    return rlhf.load_pairs()


def pairs_frame(data: rlhf.PreferenceData, flipped: tuple[int, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pair": range(1, len(data.pairs) + 1),
            "preferred": ["B (yours)" if i in flipped else "A" for i in range(len(data.pairs))],
            "prompt": [p.prompt for p in data.pairs],
            "answer A": [p.chosen for p in data.pairs],
            "answer B": [p.rejected for p in data.pairs],
            "set": ["train"] * data.n_train + ["held out"] * data.held_out,
        }
    )


CHOICES, CURSOR = "rlhf.choices", "rlhf.cursor"  # {pair index: "A" | "B"}, the pair shown


def _choose(i: int, side: str, n: int) -> None:
    st.session_state.setdefault(CHOICES, {})[i] = side
    st.session_state[CURSOR] = min(i + 1, n - 1)


def _move(step: int, n: int) -> None:
    st.session_state[CURSOR] = max(0, min(n - 1, st.session_state.get(CURSOR, 0) + step))


def labelling_cards(data: rlhf.PreferenceData) -> tuple[int, ...]:
    """One training pair at a time as two answer cards side by side (stacked on a phone), each
    with its button; returns the pairs the learner prefers B in. Unlabelled pairs keep the
    shipped label (A)."""
    n = data.n_train
    choices: dict[int, str] = st.session_state.setdefault(CHOICES, {})
    i = min(max(0, int(st.session_state.get(CURSOR, 0))), n - 1)
    pair = data.pairs[i]
    done = sum(1 for k in choices if k < n)
    st.progress(done / n, text=f"Labelled {done} of {n} training pairs")
    with st.container(border=True):
        mine = choices.get(i)
        st.markdown(
            f"**Pair {i + 1} of {n}**"
            + (f" · you preferred {mine}" if mine else " · not labelled yet (shipped: A)")
        )
        st.text(pair.prompt)
        a, b = st.columns(2)
        for col, side, text in ((a, "A", pair.chosen), (b, "B", pair.rejected)):
            with col.container(border=True):
                st.caption(f"Answer {side}")
                st.text(text)
                st.button(
                    f"{side} is better",
                    key=f"rlhf.pick{side}",
                    on_click=_choose,
                    args=(i, side, n),
                    type="primary" if mine == side else "secondary",
                    width="stretch",
                )
        p, q = st.columns(2)
        p.button("← Previous pair", key="rlhf.prev", on_click=_move, args=(-1, n), disabled=i == 0)
        q.button("Next pair →", key="rlhf.next", on_click=_move, args=(1, n), disabled=i == n - 1)
    return tuple(sorted(k for k, side in choices.items() if side == "B" and k < n))


def _features_key(model_id: str) -> tuple:
    return ("rlhf", "features", model_id, rlhf.DATA.stat().st_mtime_ns)


def _items() -> list[tuple[str, str]]:
    data = cached_pairs()
    return rlhf.answers_of(data) + rlhf.filler_items(data)


def features_job(model_id: str) -> rlhf.AnswerFeatures | None:
    items = _items()

    def work(report: rlhf.Report) -> rlhf.AnswerFeatures:
        return rlhf.answer_features(load_model(model_id), items, report)

    return run_job(
        _features_key(model_id),
        work,
        start_label="Read every answer with the LM",
        estimate_s=reading_estimate_s(len(items)),
        caps=f"{len(items)} answers (the pairs, plus filler variants), one forward pass "
        f"each, at most {rlhf.ANSWER_TOKEN_CAP} answer tokens.",
        rerun_label=None,
    )


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_reward_model(model_id: str, flipped: tuple[int, ...]) -> rlhf.RewardModel | None:
    done = finished_result(_features_key(model_id))
    if done is None:
        return None
    train, held = rlhf.pair_indices(cached_pairs(), flipped)
    return rlhf.train_reward_model(done.value.features, train, held, weight_decay=WEIGHT_DECAY)


def training_chart(model: rlhf.RewardModel) -> alt.Chart:
    steps = range(1, len(model.losses) + 1)
    df = pd.concat(
        [
            pd.DataFrame({"step": steps, "value": model.losses, "curve": "training loss"}),
            pd.DataFrame(
                {
                    "step": steps,
                    "value": model.held_out_accuracy,
                    "curve": "held-out pairwise accuracy",
                }
            ),
        ]
    )
    return (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("step:Q", title="training step"),
            y=alt.Y("value:Q", title="loss (nats) / accuracy"),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=["curve", "step", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(height=240)
    )


def answers_frame(
    features: rlhf.AnswerFeatures,
    model: rlhf.RewardModel,
    data: rlhf.PreferenceData,
    flipped: tuple[int, ...],
) -> pd.DataFrame:
    n = 2 * len(data.pairs)
    rewards = model.score(features.features[:n])
    rows = []
    for i in range(n):
        pair = i // 2
        preferred = (i % 2 == 0) != (pair in flipped)
        rows.append(
            {
                "answer": rlhf.answers_of(data)[i][1],
                "tokens": int(features.tokens[i]),
                "reward": float(rewards[i]),
                "label": "preferred" if preferred else "not preferred",
                "set": "train" if pair < data.n_train else "held out",
            }
        )
    return pd.DataFrame(rows)


def length_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_circle(size=70, opacity=0.8)
        .encode(
            x=alt.X("tokens:Q", title="answer length (tokens)"),
            y=alt.Y("reward:Q", title="reward"),
            color=alt.Color("label:N", title=None, legend=alt.Legend(orient="top")),
            shape=alt.Shape("set:N", title=None),
            tooltip=["answer", "tokens", alt.Tooltip("reward:Q", format=".2f"), "label"],
        )
        .properties(height=330)
    )


def filler_frame(
    features: rlhf.AnswerFeatures, model: rlhf.RewardModel, data: rlhf.PreferenceData
) -> pd.DataFrame:
    start = 2 * len(data.pairs)
    items = rlhf.filler_items(data)
    rewards = model.score(features.features[start : start + len(items)])
    reps = len(rlhf.FILLER_REPEATS)
    return pd.DataFrame(
        {
            "prompt": [p for p, _ in items],
            "filler sentences": [rlhf.FILLER_REPEATS[i % reps] for i in range(len(items))],
            "tokens": features.tokens[start : start + len(items)].astype(int),
            "reward": rewards,
        }
    )


def filler_effect(df: pd.DataFrame, k: int) -> tuple[float, int, int]:
    """(mean reward change, answers whose reward rose, answers) after k filler sentences."""
    base = df[df["filler sentences"] == 0].set_index("prompt")["reward"]
    got = df[df["filler sentences"] == k].set_index("prompt")["reward"]
    change = got - base.loc[got.index]
    return float(change.mean()), int((change > 0).sum()), len(change)


def filler_chart(df: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "filler sentences:Q",
                title="sentences of filler appended",
                axis=alt.Axis(tickMinStep=1, format="d"),
            ),
            y=alt.Y("reward:Q", title="reward"),
            color=alt.Color(
                "prompt:N",
                title="held-out prompt",
                legend=alt.Legend(orient="bottom", columns=1, labelLimit=400),
            ),
            tooltip=["prompt", "filler sentences", "tokens", alt.Tooltip("reward:Q", format=".2f")],
        )
        .properties(height=330)  # the legend below takes about 90 px of it
    )


@st.cache_data(show_spinner="Reading the answer with the LM…", max_entries=64)
def cached_score_features(model_id: str, prompt: str, answer: str) -> rlhf.AnswerFeatures:
    return rlhf.answer_features(load_model(model_id), [(prompt, answer)])


def samples_job(
    model_id: str, prompt: str, n: int, seed: int
) -> tuple[tuple[str, ...], rlhf.AnswerFeatures] | None:
    def work(report: rlhf.Report) -> tuple[tuple[str, ...], rlhf.AnswerFeatures]:
        lm = load_model(model_id)
        samples = rlhf.sample_answers(
            lm,
            prompt,
            n,
            SAMPLE_TOKENS,
            seed=seed,
            report=lambda f, t="", partial=None: report(0.8 * f, t),
        )
        feats = rlhf.answer_features(
            lm,
            [(prompt, s) for s in samples],
            lambda f, t="", partial=None: report(0.8 + 0.2 * f, t),
        )
        return samples, feats

    return run_job(
        ("rlhf", "samples", model_id, prompt, n, seed),
        work,
        start_label=f"Draw {n} answers",
        estimate_s=sampling_estimate_s(n),
        caps=f"Temperature 1, at most {SAMPLE_TOKENS} tokens each, seeds {seed}-"
        f"{seed + n - 1}; n at most {N_MAX}.",
        rerun_label=None,
    )


def kl_frame(n_now: int) -> pd.DataFrame:
    rows = []
    for n in range(1, N_MAX + 1):
        rows.append(
            {
                "n": n,
                "KL (nats)": rlhf.best_of_n_kl_bound(n),
                "curve": "closed form log n - (n-1)/n",
            }
        )
        rows.append(
            {
                "n": n,
                "KL (nats)": rlhf.best_of_n_kl_exact(20, n),
                "curve": "exact, policy of 20 equally likely answers",
            }
        )
    df = pd.DataFrame(rows)
    df["current"] = df["n"] == n_now
    return df


def kl_chart(df: pd.DataFrame) -> alt.Chart:
    base = alt.Chart(df).encode(
        x=alt.X(
            "n:Q",
            title="n (answers drawn)",
            scale=alt.Scale(domain=[int(df["n"].min()), int(df["n"].max())], nice=False),
            axis=alt.Axis(format="d", tickMinStep=1),  # a count of answers: no 0.0, 1.0, ...
        ),
        y=alt.Y("KL (nats):Q"),
        color=alt.Color(
            "curve:N",
            title=None,
            legend=alt.Legend(
                orient="top", labelLimit=300, columns=fitting_columns(df["curve"].unique())
            ),
        ),
        tooltip=["curve", "n", alt.Tooltip("KL (nats):Q", format=".4f")],
    )
    return (
        base.mark_line() + base.transform_filter(alt.datum.current).mark_point(size=90, filled=True)
    ).properties(height=240)


def drift_frame(rewards: np.ndarray) -> pd.DataFrame:
    betas = np.geomspace(0.01, 100, 60)
    rows = [rlhf.kl_penalised(rewards, float(b)) for b in betas]
    return pd.DataFrame(
        {
            "beta": [r.beta for r in rows],
            "KL (nats)": [r.kl for r in rows],
            "expected reward": [r.expected_reward for r in rows],
        }
    )


def drift_chart(df: pd.DataFrame, point: rlhf.Tilted) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line()
        .encode(
            x=alt.X("KL (nats):Q", title="drift from the policy: KL (nats)"),
            y=alt.Y("expected reward:Q", title="expected reward"),
            tooltip=[
                alt.Tooltip("beta:Q", format=".3g"),
                alt.Tooltip("KL (nats):Q", format=".3f"),
                alt.Tooltip("expected reward:Q", format=".2f"),
            ],
        )
    )
    dot = (
        alt.Chart(pd.DataFrame([{"KL (nats)": point.kl, "expected reward": point.expected_reward}]))
        .mark_point(size=140, filled=True, color="#e8590c")
        .encode(x="KL (nats):Q", y="expected reward:Q")
    )
    return (line + dot).properties(height=240)


def dpo_frame(
    features: rlhf.AnswerFeatures, data: rlhf.PreferenceData, flipped: tuple[int, ...], beta: float
) -> pd.DataFrame:
    train, _ = rlhf.pair_indices(data, flipped)
    c = [p[0] for p in train]
    r = [p[1] for p in train]
    ref = rlhf.TEMPERATURES.index(1.0)
    rows = []
    for k, t in enumerate(rlhf.TEMPERATURES):
        losses = rlhf.dpo_losses(
            features.logp[c, k],
            features.logp[r, k],
            features.logp[c, ref],
            features.logp[r, ref],
            beta,
        )
        rows.append({"policy temperature": t, "mean DPO loss": float(losses.mean())})
    return pd.DataFrame(rows)


def reference_agreement(
    features: rlhf.AnswerFeatures, data: rlhf.PreferenceData, flipped: tuple[int, ...]
) -> float:
    """Share of training pairs whose preferred answer the LM already finds more likely."""
    train, _ = rlhf.pair_indices(data, flipped)
    ref = rlhf.TEMPERATURES.index(1.0)
    return float(np.mean([features.logp[c, ref] > features.logp[r, ref] for c, r in train]))


def dpo_chart(df: pd.DataFrame, now: float) -> alt.Chart:
    line = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("policy temperature:Q", title="policy = the LM at temperature T"),
            y=alt.Y("mean DPO loss:Q", title="mean DPO loss (nats)"),
            tooltip=["policy temperature", alt.Tooltip("mean DPO loss:Q", format=".4f")],
        )
    )
    ln2 = (
        alt.Chart(pd.DataFrame({"y": [math.log(2)], "label": ["ln 2"]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(y="y:Q", tooltip=["label"])
    )
    rule = alt.Chart(pd.DataFrame({"x": [now]})).mark_rule(color="#e8590c").encode(x="x:Q")
    return (line + ln2 + rule).properties(height=240)


def best_of_n_section(drawn, model, n: int) -> None:
    """The n answers ranked by the reward head, and the KL-penalised reweighting of them."""
    samples, feats = drawn
    rewards = model.score(feats.features)
    best = int(rewards.argmax())
    for i, (s, r) in enumerate(sorted(zip(samples, rewards), key=lambda x: -x[1])):
        st.text(f"{'best ' if i == 0 else '     '}{r:+6.2f}  {s or '(empty answer)'}")
    st.caption(f"Seed {best} won. The rewards use the head trained above (your labels included).")
    beta = st.select_slider(
        "KL penalty beta", [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0], 1.0, key="rlhf.beta"
    )
    point = rlhf.kl_penalised(rewards, beta)
    draw_chart(drift_chart(drift_frame(rewards), point))
    st.caption(
        f"The best policy for reward - {beta} x KL reweights these {n} answers by "
        f"exp(r / beta): expected reward {point.expected_reward:+.2f} at a drift of "
        f"{point.kl:.3f} nats (at most log {n} = {math.log(n):.3f})."
    )


def learned_section(features, model, data, flipped: tuple[int, ...]) -> None:
    """What the reward model learned: reward against length, and the filler test."""
    answers = answers_frame(features, model, data, flipped)
    corr = rlhf.correlation(answers["tokens"], answers["reward"])
    filler = filler_frame(features, model, data)
    one, most = (filler_effect(filler, k) for k in (1, rlhf.FILLER_REPEATS[-1]))
    st.markdown(
        f"**What did it learn?** Correlation of reward with answer length: **{corr:+.2f}**. "
        f"Appending one sentence of meaningless filler to a held-out answer changes its reward by "
        f"**{one[0]:+.2f}** on average (raised for {one[1]} of {one[2]}); "
        f"{rlhf.FILLER_REPEATS[-1]} sentences by **{most[0]:+.2f}** (raised for {most[1]} of "
        f"{most[2]}). "
        + (
            "Any rise is reward hacking: the answer got no better."
            if max(one[1], most[1])
            else "This reward model was not fooled by it."
        )
    )
    c1, c2 = st.columns(2)
    draw_chart(length_chart(answers), where=c1)
    draw_chart(filler_chart(filler), where=c2)
    with st.expander("The filler sentence"):
        st.text(data.filler.strip())
