"""core.runtime.generation's settings: impossible values are refused at construction with a
message naming the rule, like transformers' logits processors (which are the reference here:
every value they refuse, we refuse too, except the 'off' values 0 that our settings allow)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from core.runtime.generation import GREEDY, DecodingSettings

BAD = [
    ("temperature", -0.5, "TemperatureLogitsWarper", "temperature must be >= 0"),
    ("top_k", -1, "TopKLogitsWarper", "top_k must be >= 0"),
    ("top_p", -0.1, "TopPLogitsWarper", "top_p must be in [0, 1]"),
    ("top_p", 1.5, "TopPLogitsWarper", "top_p must be in [0, 1]"),
    ("min_p", -0.1, "MinPLogitsWarper", "min_p must be in [0, 1]"),
    ("min_p", 1.5, "MinPLogitsWarper", "min_p must be in [0, 1]"),
    (
        "repetition_penalty",
        0.0,
        "RepetitionPenaltyLogitsProcessor",
        "repetition_penalty must be > 0",
    ),
    (
        "repetition_penalty",
        -1.0,
        "RepetitionPenaltyLogitsProcessor",
        "repetition_penalty must be > 0",
    ),
]


@pytest.mark.parametrize(("field", "value", "processor", "message"), BAD)
def test_bad_values_refused_like_transformers(field, value, processor, message):
    import transformers

    with pytest.raises(ValueError):
        getattr(transformers, processor)(value)  # the reference refuses it
    with pytest.raises(ValueError, match=re.escape(message)):
        DecodingSettings(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_new_tokens", 0), ("max_new_tokens", -3), ("temperature", math.nan), ("top_p", math.inf)],
)
def test_impossible_lengths_and_non_finite_numbers_refused(field, value):
    with pytest.raises(ValueError, match=field):
        DecodingSettings(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_k", 2.5),
        ("max_new_tokens", "8"),
        ("seed", 1.0),
        ("temperature", "hot"),
        ("top_k", True),
        ("stop_at_eos", 1),
    ],
)
def test_wrong_types_refused(field, value):
    with pytest.raises(TypeError, match=field):
        DecodingSettings(**{field: value})


def test_off_values_and_replace_still_work():
    import numpy as np

    s = DecodingSettings(temperature=0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)
    assert s.greedy
    assert DecodingSettings(top_k=np.int64(5), max_new_tokens=np.int64(3)).top_k == 5
    with pytest.raises(ValueError, match="max_new_tokens"):
        replace(GREEDY, max_new_tokens=0)  # dataclasses.replace validates too
