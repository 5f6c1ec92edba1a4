"""The pipeline: a list of steps run in order (written once, in `PIPELINE`), the documents left
after each dropping step, and how well each step caught the junk it targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.pretraining_data.corpus import KINDS, Doc
from core.pretraining_data.measures import DocStats
from core.pretraining_data.steps import (
    Dropped,
    ExactDedup,
    LanguageFilter,
    Measured,
    NearDedup,
    PiiMask,
    QualityFilter,
    RepetitionFilter,
    Step,
)


@dataclass(frozen=True)
class Pipeline:
    """Steps in the order they run; each holds its own thresholds (hashable, a cache key)."""

    steps: tuple[Step, ...]

    @property
    def stages(self) -> tuple[str, ...]:
        """'raw', then every step that drops documents, in order: the funnel's rows."""
        return ("raw", *(s.name for s in self.steps if s.drops))

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def with_steps(self, *changed: Step) -> Pipeline:
        """The same order, with each step of the same name replaced by its new settings."""
        new = {s.name: s for s in changed}
        unknown = set(new) - {s.name for s in self.steps}
        if unknown:
            raise ValueError(f"no step named {sorted(unknown)} in this pipeline")
        return Pipeline(tuple(new.get(s.name, s) for s in self.steps))


PIPELINE = Pipeline(
    (
        LanguageFilter(),
        QualityFilter(),
        RepetitionFilter(),
        ExactDedup(),
        NearDedup(),
        PiiMask(),
    )
)
STAGES: tuple[str, ...] = PIPELINE.stages


@dataclass(frozen=True)
class PipelineResult:
    kept: tuple[tuple[int, ...], ...]  # ids still in after each stage of `Pipeline.stages`
    dropped: tuple[Dropped, ...]
    masked: tuple[tuple[int, str, int], ...]  # (id, masked text, placeholders) where PII was
    candidate_pairs: int  # LSH candidates among the documents reaching near dedup


def run_pipeline(
    docs: Sequence[Doc],
    pipeline: Pipeline = PIPELINE,
    signatures: np.ndarray | None = None,
    stats: Sequence[DocStats] | None = None,
) -> PipelineResult:
    """Every step in order. `signatures` (for the near-dedup step's settings) and `stats` may
    be precomputed, one row per doc in order, since neither depends on a threshold."""
    seen = Measured(
        stats=None if stats is None else {d.id: s for d, s in zip(docs, stats, strict=True)},
        signatures=None
        if signatures is None
        else {d.id: signatures[i] for i, d in enumerate(docs)},
    )
    cur: tuple[Doc, ...] = tuple(docs)
    kept = [tuple(d.id for d in cur)]
    dropped: list[Dropped] = []
    masked: list[tuple[int, str, int]] = []
    pairs = 0
    for step in pipeline.steps:
        out = step.run(cur, seen)
        cur = out.kept
        dropped += out.dropped
        masked += out.masked
        pairs += out.candidate_pairs
        if step.drops:
            kept.append(tuple(d.id for d in cur))
    return PipelineResult(tuple(kept), tuple(dropped), tuple(masked), pairs)


# ---- how well each step caught what it targets ----------------------------------------------


@dataclass(frozen=True)
class RecallRow:
    kind: str
    injected: int
    caught: int  # dropped by a step meant for it (masked, for PII)
    dropped_any: int  # dropped by any step
    target: str

    @property
    def recall(self) -> float:
        return self.caught / self.injected if self.injected else float("nan")


def targets(pipeline: Pipeline = PIPELINE) -> dict[str, str]:
    """Injected kind -> the steps meant to catch it ('a|b'; 'masked' for a rewriting step)."""
    out = {}
    for kind in KINDS:
        names = [s.name if s.drops else "masked" for s in pipeline.steps if kind in s.catches]
        out[kind] = "|".join(names) or "none (false positives)"
    return out


def recall_table(
    docs: Sequence[Doc], result: PipelineResult, pipeline: Pipeline = PIPELINE
) -> tuple[RecallRow, ...]:
    by_id = {d.id: d for d in docs}
    stage_of = {x.doc_id: x.stage for x in result.dropped}
    masked = {i: text for i, text, _ in result.masked}
    rows = []
    aimed = targets(pipeline)
    for kind in KINDS:
        ids = [d.id for d in docs if d.kind == kind]
        if kind == "pii":  # caught when every injected e-mail and phone is gone from the text
            caught = sum(i in masked and not any(p in masked[i] for p in by_id[i].pii) for i in ids)
        else:
            caught = sum(stage_of.get(i, "") in aimed[kind].split("|") for i in ids)
        rows.append(RecallRow(kind, len(ids), caught, sum(i in stage_of for i in ids), aimed[kind]))
    return tuple(rows)
