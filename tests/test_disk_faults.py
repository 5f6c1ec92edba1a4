"""Every file the app writes, damaged (issues 23 item 5, 24 items 2 and 7b).

For each file on disk, three faults: a half-written file (a process killed while writing), a
corrupted file, a read-only folder. Each must give a clean rebuild or one sentence on screen,
never a traceback. The converted model's own faults (killed conversion, read-only folders, NaN
weights, bytes changed in the weights) are in test_faults.py; here its small files.
Every test works in its own tmp folders: the shared ~/.cache/llm-explorer is never touched.
"""

from __future__ import annotations

import io
import pickle
import zipfile

import numpy as np
import pytest
from test_faults import _read_only, cache_copy  # noqa: F401 (a fixture)
from test_rag import _hashed_bag_of_words

from core import rag
from core.runtime import models

SIZE, OVERLAP = 800, 50


def _valid_npy(rows: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((rows, 384), dtype=np.float32) / np.sqrt(384))
    return buf.getvalue()


def _damaged_index(kind: str) -> bytes:
    good = _valid_npy(len(rag.corpus_chunks(SIZE, OVERLAP)))
    if kind == "empty":  # a 0-byte file: EOFError in np.load
        return b""
    if kind == "header+garbage":  # tokenize.TokenError in np.load's header parser
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3, \"\"\"abc       \n"
        return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"garbage" * 5
    if kind == "zip":  # BadZipFile: np.load takes it for an .npz
        return b"PK\x03\x04" + b"\x00" * 100
    if kind == "npz":  # a valid archive, not an array
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("a.npy", good)
        return buf.getvalue()
    if kind == "pickle":
        return pickle.dumps({"not": "an index"})
    if kind == "half-written":  # a write cut off by a killed process
        return good[: len(good) // 2]
    if kind == "wrong-rows":
        return _valid_npy(7)
    raise ValueError(kind)


DAMAGES = ["empty", "header+garbage", "zip", "npz", "pickle", "half-written", "wrong-rows"]


@pytest.fixture
def index_path(tmp_path, monkeypatch):
    """page 21's index file in a private folder."""
    folder = tmp_path / "cache" / "rag"
    monkeypatch.setattr(rag, "index_file", lambda s, o: folder / f"index-{s}-{o}.npy")
    return folder / f"index-{SIZE}-{OVERLAP}.npy"


@pytest.mark.parametrize("kind", DAMAGES)
def test_an_unreadable_index_is_not_built(index_path, kind):
    index_path.parent.mkdir(parents=True)
    index_path.write_bytes(_damaged_index(kind))
    assert rag.load_index(SIZE, OVERLAP) is None


def test_a_killed_write_leaves_a_tmp_file_that_the_next_save_removes(index_path):
    index_path.parent.mkdir(parents=True)
    stale = index_path.parent / f".{index_path.stem}-abc123.tmp"
    stale.write_bytes(_damaged_index("half-written"))
    assert rag.load_index(SIZE, OVERLAP) is None  # the tmp file is never read as the index
    emb = np.ones((len(rag.corpus_chunks(SIZE, OVERLAP)), 384), dtype=np.float32)
    assert rag.save_index(emb, index_path)
    assert not stale.exists()
    assert [p.name for p in index_path.parent.iterdir()] == [index_path.name]
    np.testing.assert_array_equal(rag.load_index(SIZE, OVERLAP), emb)


def test_a_read_only_index_folder_builds_in_memory_and_says_so(index_path, monkeypatch):
    _read_only(monkeypatch, index_path.parent.parent)
    monkeypatch.setattr(rag, "embed_texts", _hashed_bag_of_words)
    assert rag.index_not_kept_reason(SIZE, OVERLAP) == "read-only file system"
    emb = rag.build_index(None, SIZE, OVERLAP)
    assert emb.shape[0] == len(rag.corpus_chunks(SIZE, OVERLAP))
    assert not index_path.exists()


def _open_rag_page(monkeypatch, size: int):
    from apptest_util import open_page

    from components import rag as crag
    from components.jobs import job_store

    monkeypatch.setattr(rag, "embed_texts", _hashed_bag_of_words)
    crag._index_store.clear()
    job_store().forget(("rag", "index", size, OVERLAP))
    at = open_page("pages/21_rag.py")
    at.select_slider(key="rag.size").set_value(size).run()
    return at


@pytest.mark.parametrize("kind", ["empty", "header+garbage", "zip"])
def test_page21_opens_with_a_damaged_index_and_offers_to_rebuild_it(index_path, monkeypatch, kind):
    index_path.parent.mkdir(parents=True)
    index_path.write_bytes(_damaged_index(kind))
    at = _open_rag_page(monkeypatch, SIZE)
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Dense index"] == "not built"
    start = next(b for b in at.button if b.label.startswith("Embed the"))
    start.click().run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Dense index"] == "ready"
    assert rag.load_index(SIZE, OVERLAP) is not None  # rebuilt and saved over the damage


def test_page21_with_a_read_only_cache_says_the_index_is_not_kept(index_path, monkeypatch):
    _read_only(monkeypatch, index_path.parent.parent)
    at = _open_rag_page(monkeypatch, SIZE)
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "but not on disk" in captions and "on disk for the next start" not in captions
    next(b for b in at.button if b.label.startswith("Embed the")).click().run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Dense index"] == "ready"
    at.run()  # the next rerun, the index served from memory
    assert {m.label: m.value for m in at.metric}["Dense index"] == "ready"
    assert "kept in memory only" in " ".join(c.value for c in at.caption)
    assert not index_path.exists()


# --- the converted model's small files (issue 24 item 7b) ------------------------------------


def test_a_config_replaced_by_same_size_garbage_is_found_before_loading(cache_copy):  # noqa: F811
    root, calls = cache_copy
    folder = models.converted_dir(root)
    config = folder / "config.json"
    config.write_bytes(b"\x00" * config.stat().st_size)
    # the status box must say "repairing" (components.models.conversion_label), not a bare
    # "Loading" spinner while the conversion runs again
    assert models.cache_state(folder) == "damaged"
    messages: list[str] = []
    lm = models.load_embedded(messages.append)
    assert calls and any("Repairing" in m for m in messages)
    assert lm.config.num_hidden_layers == 30
    assert models.cache_state(folder) == "ok"


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_tokenizer_files_replaced_by_same_size_garbage_are_found(cache_copy, name):  # noqa: F811
    root, _ = cache_copy
    folder = models.converted_dir(root)
    f = folder / name
    f.write_bytes(b"{" * f.stat().st_size)
    assert models.cache_state(folder) == "damaged"


def test_a_cache_from_before_file_digests_gets_them_once_it_loads(cache_copy):  # noqa: F811
    import json

    root, calls = cache_copy
    folder = models.converted_dir(root)
    marker = folder / models.MARKER
    info = json.loads(marker.read_text())
    info.pop("file_digests", None)
    marker.write_text(json.dumps(info))
    assert models.cache_state(folder) == "ok"  # sizes and the weights' checksum still hold
    models.load_embedded()
    assert not calls
    assert "config.json" in json.loads(marker.read_text())["file_digests"]
