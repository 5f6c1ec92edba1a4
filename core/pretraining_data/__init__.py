"""A pre-training data pipeline on a sample corpus, as a list of steps (the shape datatrove
uses): language, quality and repetition filters, exact and near (MinHash LSH) dedup, PII
masking. Each step is a small class holding its own thresholds, with
`run(docs) -> (kept, dropped with reasons)`; `PIPELINE` writes their order once.

- `corpus`: the sample (documentation paragraphs plus labelled, seeded junk);
- `measures`: what the rule filters measure, threshold-free;
- `dedup`: exact hashes, MinHash (datasketch's scheme, bit for bit) and banded LSH;
- `pii`: the masking patterns;
- `steps`: the steps; `pipeline`: their order, the run, and each step's recall;
- `mixture`, `perplexity`: token budgets by source, and model-based filtering.
"""

from core.pretraining_data.corpus import (
    JUNK_FILE,
    KINDS,
    SOURCES,
    CorpusSpec,
    Doc,
    junk_material,
    looks_like_code,
    sample_corpus,
)
from core.pretraining_data.dedup import (
    JaccardCheck,
    candidate_probability,
    estimated_jaccard,
    exact_duplicates,
    jaccard,
    lsh_candidates,
    lsh_threshold,
    minhash_check,
    minhash_signatures,
    near_duplicates,
    normalise,
    permutations,
    shingle_hashes,
    shingles,
)
from core.pretraining_data.measures import (
    DocStats,
    doc_stats,
    is_menu,
    language_of,
    quality_stats,
    repetition_stats,
    script_of,
    words_of,
)
from core.pretraining_data.mixture import MixRow, mixture_plan
from core.pretraining_data.perplexity import (
    CharNgram,
    PerplexityResult,
    ScoredDoc,
    char_perplexity,
    lm_prefix_perplexities,
    perplexity_sample,
    score_perplexities,
    train_char_ngram,
)
from core.pretraining_data.pii import mask_pii
from core.pretraining_data.pipeline import (
    PIPELINE,
    STAGES,
    Pipeline,
    PipelineResult,
    RecallRow,
    recall_table,
    run_pipeline,
    targets,
)
from core.pretraining_data.steps import (
    Dropped,
    ExactDedup,
    LanguageFilter,
    Measured,
    NearDedup,
    PiiMask,
    QualityFilter,
    RepetitionFilter,
    RuleFilter,
    Step,
    StepOutput,
)

__all__ = [
    "CharNgram",
    "CorpusSpec",
    "Doc",
    "DocStats",
    "Dropped",
    "ExactDedup",
    "JUNK_FILE",
    "JaccardCheck",
    "KINDS",
    "LanguageFilter",
    "Measured",
    "MixRow",
    "NearDedup",
    "PIPELINE",
    "PerplexityResult",
    "PiiMask",
    "Pipeline",
    "PipelineResult",
    "QualityFilter",
    "RecallRow",
    "RepetitionFilter",
    "RuleFilter",
    "SOURCES",
    "STAGES",
    "ScoredDoc",
    "Step",
    "StepOutput",
    "candidate_probability",
    "char_perplexity",
    "doc_stats",
    "estimated_jaccard",
    "exact_duplicates",
    "is_menu",
    "jaccard",
    "junk_material",
    "language_of",
    "lm_prefix_perplexities",
    "looks_like_code",
    "lsh_candidates",
    "lsh_threshold",
    "mask_pii",
    "minhash_check",
    "minhash_signatures",
    "mixture_plan",
    "near_duplicates",
    "normalise",
    "permutations",
    "perplexity_sample",
    "quality_stats",
    "recall_table",
    "repetition_stats",
    "run_pipeline",
    "sample_corpus",
    "score_perplexities",
    "script_of",
    "shingle_hashes",
    "shingles",
    "targets",
    "train_char_ngram",
    "words_of",
]
