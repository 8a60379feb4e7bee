import numpy as np
import pytest

from helpers.config import PROFILES
from helpers.data import Dataset, Split
from helpers.errors import ConfigError
from helpers.train import FINETUNE_LR, TrainConfig, evaluate, length_bucketed_batches, train_classifier, train_config_from


def test_bucketed_batches_cover_every_index_once():
    lengths = np.random.default_rng(0).integers(1, 100, 1000)
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(1), pool=5)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 3, "batches should hold sentences of similar length"


def test_config_checks_and_defaults():
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    cfg = train_config_from(PROFILES["tiny"], epochs=2, device="cpu")
    assert cfg.epochs == 2 and cfg.batch_size == PROFILES["tiny"].batch_size and cfg.lr == PROFILES["tiny"].lr
    assert train_config_from(PROFILES["small"], pretrained=True, device="cpu").lr == FINETUNE_LR < PROFILES["small"].lr


def test_training_learns_a_separable_toy_task(tiny_model, tokenizer, sentences):
    texts, labels = sentences
    ds = Dataset(texts * 8, np.array(labels * 8))
    split = Split(ds, Dataset(texts, np.array(labels)), Dataset(texts, np.array(labels)), ["negative", "positive"], "toy")
    before = evaluate(tiny_model, tokenizer, split.valid)
    hist = train_classifier(tiny_model, tokenizer, split, TrainConfig(epochs=4, batch_size=8, lr=3e-3), progress=False)
    after = evaluate(tiny_model, tokenizer, split.valid)
    assert len(hist.epochs) == 4 and hist.best_epoch >= 1
    assert after["loss"] < before["loss"] and after["accuracy"] >= 0.9
