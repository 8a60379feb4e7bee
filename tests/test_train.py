import dataclasses
import random

import numpy as np
import pytest
import torch

from helpers.config import MODEL_SIZES
from helpers.data import Dataset, Split, load_corpus
from helpers.errors import ConfigError
from helpers.model import SentimentClassifier, bert_config
from helpers.pretrain import initial_classifier, pretrain_config_from, pretrained_encoder, pretraining_corpus
from helpers.tokenizer import SentenceTokenizer
from helpers.train import (
    FINETUNE_LR, TrainConfig, evaluate, length_bucketed_batches, predict_label_ids, seed_everything, train_classifier,
    train_config_from,
)


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
    cfg = train_config_from(MODEL_SIZES["tiny"], epochs=2, device="cpu")
    assert cfg.epochs == 2 and cfg.batch_size == MODEL_SIZES["tiny"].batch_size and cfg.lr == MODEL_SIZES["tiny"].lr
    small = MODEL_SIZES["small"]
    assert train_config_from(small, init="pretrained_dir", device="cpu").lr == FINETUNE_LR < small.lr
    assert train_config_from(small, init="scratch", device="cpu").lr == small.scratch_lr
    with pytest.raises(ConfigError, match="init must be one of"):
        train_config_from(small, init="imagenet")


def test_training_learns_a_separable_toy_task(tiny_model, tokenizer, sentences):
    texts, labels = sentences
    ds = Dataset(texts * 8, np.array(labels * 8))
    split = Split(ds, Dataset(texts, np.array(labels)), Dataset(texts, np.array(labels)), ["negative", "positive"], "toy")
    before = evaluate(tiny_model, tokenizer, split.valid)
    hist = train_classifier(tiny_model, tokenizer, split, TrainConfig(epochs=4, batch_size=8, lr=3e-3), progress=False)
    after = evaluate(tiny_model, tokenizer, split.valid)
    assert len(hist.epochs) == 4 and hist.best_epoch >= 1
    assert after["loss"] < before["loss"] and after["accuracy"] >= 0.9


def test_seeding_before_the_model_exists_fixes_its_weights(tokenizer):
    def build():
        return SentimentClassifier(bert_config(MODEL_SIZES["tiny"], tokenizer.vocab_size), num_labels=2)

    seed_everything(5)
    a, draws_a = build(), (random.random(), np.random.rand())
    seed_everything(5)
    b, draws_b = build(), (random.random(), np.random.rand())
    c = build()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert draws_a == draws_b
    assert not torch.equal(a.dense.weight, c.dense.weight), "without seeding, a new model must differ"


def test_same_parameters_give_the_same_metrics_on_tiny(tmp_path):
    """Issue 10's case (tiny, max_len 37, batch_size 7, epochs 1, seed 123) gave 0.779 and 0.684 in two runs,
    because the model was built before torch was seeded. 01's steps, run twice: identical metrics and weights.
    (A sample of the split keeps this quick; pretraining runs anew each time, in its own folder.)"""
    full, _ = load_corpus(seed=42)
    split = Split(*(Dataset(p.texts[:n], p.labels[:n]) for p, n in ((full.train, 560), (full.valid, 200), (full.test, 200))),
                  labels=full.labels, source=full.source)
    size = MODEL_SIZES["tiny"]

    def run(folder):
        seed_everything(123)
        corpus = pretraining_corpus(split)
        encoder = pretrained_encoder(folder, size, corpus, pretrain_config_from(size, 6), seed=123, progress=False)
        seed_everything(123)
        model, vocab, init = initial_classifier(size, split, encoder)
        tokenizer = SentenceTokenizer(vocab, 37)
        cfg = train_config_from(size, batch_size=7, epochs=1, seed=123, init=init, device="cpu")
        hist = train_classifier(model, tokenizer, split, cfg, progress=False)
        return (evaluate(model, tokenizer, split.test), hist.step_loss,
                predict_label_ids(model, tokenizer, split.valid.texts).tolist(), model.state_dict())

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first[:3] == second[:3]
    assert all(torch.equal(v, second[3][k]) for k, v in first[3].items())
