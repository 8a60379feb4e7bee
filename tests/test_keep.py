"""What 01 keeps - data/ and checkpoint/ written together - and how every reader refuses a mixed pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.config import ArtifactPaths
from helpers.data import Dataset, Split, load_length_stats, load_split, save_split, split_mismatch
from helpers.errors import CheckpointError, DataError
from helpers.model import load_checkpoint, refuse_to_replace, save_checkpoint, save_trained_model


def files(root) -> dict[str, bytes]:
    """Every file below ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def toy_split(sentences, seed: int) -> Split:
    texts, labels = sentences
    order = np.random.default_rng(seed).permutation(len(texts))
    t = [texts[i] for i in order]
    y = np.array([labels[i] for i in order])
    return Split(Dataset(t[:8], y[:8]), Dataset(t[8:10], y[8:10]), Dataset(t[10:], y[10:]),
                 ["negative", "positive"], "toy")


def keep(paths, model, tokenizer, split, overwrite=False):
    lengths = [tokenizer.token_count(t) for t in split.train.texts]
    return save_trained_model(paths, model, tokenizer.vocab, split=split, lengths=lengths,
                              max_len=tokenizer.max_len, meta={"model_size": "tiny", "metrics": {"test_accuracy": 0.5}},
                              split_extra={"seed": 0}, overwrite=overwrite)


@pytest.fixture()
def kept(tmp_path, tiny_model, tokenizer, sentences):
    paths = ArtifactPaths.at(tmp_path / "artifacts")
    keep(paths, tiny_model, tokenizer, toy_split(sentences, 0))
    return paths


def test_model_and_split_are_kept_together(kept, tokenizer, sentences):
    split = toy_split(sentences, 0)
    assert load_split(kept.data).hash == split.hash
    stats = load_length_stats(kept.data)
    assert stats["split_hash"] == split.hash and stats["count"] == len(split.train) and stats["max_len"] == 32
    ckpt = load_checkpoint(kept.checkpoint)
    assert ckpt.meta["split_hash"] == split.hash and split_mismatch(kept.root) is None
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]  # no temporary folders left


def test_refused_run_leaves_every_file_byte_for_byte(kept, tiny_model, tokenizer, sentences):
    before = files(kept.root)
    with pytest.raises(CheckpointError, match="already holds a trained model .*Nothing was written.*overwrite=True"):
        refuse_to_replace(kept.checkpoint, overwrite=False)  # 01's first cell
    with pytest.raises(CheckpointError, match="already holds a trained model"):
        keep(kept, tiny_model, tokenizer, toy_split(sentences, 1))  # and again at the save
    assert files(kept.root) == before


def test_failing_save_leaves_every_file_byte_for_byte(kept, tiny_model, tokenizer, sentences, monkeypatch):
    """overwrite=True, but the run fails while writing the new model: the kept one must survive intact."""
    before = files(kept.root)
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a half-written new checkpoint exists at this point
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        keep(kept, tiny_model, tokenizer, toy_split(sentences, 1), overwrite=True)
    assert files(kept.root) == before
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]


def test_overwrite_keeps_the_previous_model_with_its_split(kept, tiny_model, tokenizer, sentences):
    before = files(kept.root)
    keep(kept, tiny_model, tokenizer, toy_split(sentences, 1), overwrite=True)
    stamp = next(kept.root.glob("checkpoint.previous-*")).name.split("previous-")[1]
    assert sorted(p.name for p in kept.root.iterdir()) == [
        "checkpoint", f"checkpoint.previous-{stamp}", "data", f"data.previous-{stamp}"]
    previous = {f"{d}/{p}": b for d in ("checkpoint", "data") for p, b in files(kept.root / f"{d}.previous-{stamp}").items()}
    assert previous == before
    assert load_split(kept.data).hash == toy_split(sentences, 1).hash


def test_readers_refuse_a_split_the_checkpoint_was_not_trained_on(kept, sentences):
    """The failure of issue 10: a later run rewrote data/ and 05 then scored the old model on its training text."""
    other = toy_split(sentences, 1)
    save_split(other, kept.data)
    sentence = r"was trained on another data split than .* re-run 01_train with overwrite=True"
    with pytest.raises(DataError, match=sentence):
        load_split(kept.data)
    with pytest.raises(CheckpointError, match=sentence):
        load_checkpoint(kept.checkpoint)
    with pytest.raises(DataError, match="measured on another split"):
        load_length_stats(kept.data)


def test_a_lone_checkpoint_or_split_needs_no_partner(tmp_path, tiny_model, tokenizer, sentences):
    """Outside an artifacts folder (or with one half missing) there is nothing to compare."""
    path = save_checkpoint(tmp_path / "ckpt", tiny_model, tokenizer.vocab, labels=["negative", "positive"],
                           max_len=tokenizer.max_len, meta={"split_hash": "x"})
    assert load_checkpoint(path).meta["split_hash"] == "x"
    save_split(toy_split(sentences, 0), tmp_path / "data")
    assert split_mismatch(tmp_path) is None  # tmp_path/checkpoint does not exist
