"""Masked-language-model pretraining: masking, packing, bert4torch's MLM head, the reusable checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers.config import MODEL_SIZES, PretrainConfig
from helpers.data import Dataset, Split
from helpers.errors import CheckpointError, ConfigError
from helpers.model import bert_config
from helpers.model import SentimentClassifier
from helpers.pretrain import (
    ENCODER_FILE, IGNORE_INDEX, META_FILE, EncoderStart, MaskedBatches, PretrainCorpus, build_mlm_model,
    encoder_start, lr_factor, mask_tokens, pretrain_config_from, pretrained_encoder, pretraining_corpus,
    run_pretraining,
)
from helpers.tokenizer import SentenceTokenizer, build_vocab

TINY = MODEL_SIZES["tiny"]
CFG = PretrainConfig(steps=6, batch_size=4, seq_len=16, lr=2e-3, warmup_steps=2, vocab_min_count=1)


@pytest.fixture(scope="module")
def corpus(sentences) -> PretrainCorpus:
    texts = sentences[0] * 3
    return PretrainCorpus(texts, [{"name": "toy", "texts": len(texts)}], "toy-hash")


def test_masking_follows_berts_recipe():
    rng = np.random.default_rng(0)
    regular = np.arange(5, 1005)
    ids = rng.integers(5, 1005, (400, 128))
    ids[:, 0], ids[:, -1], ids[:, 60:64] = 2, 3, 0  # [CLS], [SEP], padding
    inputs, labels = mask_tokens(ids, rng, 0.15, 4, regular)
    chosen = labels != IGNORE_INDEX
    assert abs(chosen[:, 1:-1].sum() / np.isin(ids, regular).sum() - 0.15) < 0.005
    assert not chosen[:, 0].any() and not chosen[:, -1].any() and not chosen[:, 60:64].any(), "specials are never chosen"
    assert (labels[chosen] == ids[chosen]).all()
    masked = (inputs == 4) & chosen
    kept = (inputs == ids) & chosen
    swapped = chosen & ~masked & ~kept
    n = chosen.sum()
    assert abs(masked.sum() / n - 0.8) < 0.01 and abs(kept.sum() / n - 0.1) < 0.01 and abs(swapped.sum() / n - 0.1) < 0.01
    assert np.isin(inputs[swapped], regular).all()
    assert (inputs[~chosen] == ids[~chosen]).all(), "tokens that are not chosen stay as they are"


def test_masking_always_chooses_one_token():
    rng = np.random.default_rng(1)
    ids = np.array([[2, 7, 3]])
    _, labels = mask_tokens(ids, rng, 1e-9, 4, np.arange(5, 10))
    assert labels.tolist() == [[IGNORE_INDEX, 7, IGNORE_INDEX]]


def test_packing_covers_every_text_in_sequences_of_seq_len(sentences):
    texts = sentences[0] + ["很" * 40]  # one text longer than a sequence
    tok = SentenceTokenizer(build_vocab(texts), max_len=16)
    stream = MaskedBatches(texts, tok, CFG, np.random.default_rng(0))
    seqs = stream.sequences()
    every = sorted(i for t in texts for i in tok.token_ids(t))
    got, seen = [], []
    while len(seen) < len(every):
        seq = next(seqs)
        assert seq[0] == stream.cls_id and seq[-1] == stream.sep_id and len(seq) <= CFG.seq_len
        got.append(seq)
        seen += [i for i in seq if i not in (stream.cls_id, stream.sep_id)]
    assert sorted(seen) == every, "the first pass holds every token of every text once"
    again = MaskedBatches(texts, tok, CFG, np.random.default_rng(0)).sequences()
    assert [next(again) for _ in got] == got, "the stream is a function of the seed"


def test_mlm_model_is_bert4torchs_with_a_tied_decoder(corpus):
    vocab = build_vocab(corpus.texts)
    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY, len(vocab)))
    assert model.mlmDecoder.weight is model.embeddings.word_embeddings.weight
    ids = torch.tensor([[2, 10, 11, 3]])
    assert model([ids, torch.zeros_like(ids)])[-1].shape == (1, 4, len(vocab))


def test_schedule_does_not_depend_on_the_number_of_steps():
    assert [round(lr_factor(s, 4), 4) for s in range(7)] == [0.25, 0.5, 0.75, 1.0, round((4 / 5) ** 0.5, 4),
                                                             round((4 / 6) ** 0.5, 4), round((4 / 7) ** 0.5, 4)]


def test_a_snapshot_of_a_longer_run_is_the_shorter_run(corpus):
    """The learning curve's premise: after n steps, a longer run holds exactly what a run of n steps makes."""
    vocab = build_vocab(corpus.texts)
    config = bert_config(TINY, len(vocab))
    snapshot = {}

    def keep(step, model):
        if step == 3:
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    run_pretraining(corpus, vocab, config, dataclasses.replace(CFG, steps=5), seed=3, device="cpu", progress=False,
                    on_step=keep)
    short, _ = run_pretraining(corpus, vocab, config, dataclasses.replace(CFG, steps=3), seed=3, device="cpu",
                               progress=False)
    assert all(torch.equal(v, snapshot[k]) for k, v in short.state_dict().items())


def test_pretraining_learns(corpus):
    vocab = build_vocab(corpus.texts)
    cfg = dataclasses.replace(CFG, steps=60, batch_size=8)
    _, hist = run_pretraining(corpus, vocab, bert_config(TINY, len(vocab)), cfg, seed=0, device="cpu", progress=False)
    assert len(hist.loss) == 60 and np.mean(hist.loss[-10:]) < np.mean(hist.loss[:10]) - 0.5
    assert np.mean(hist.accuracy[-10:]) > np.mean(hist.accuracy[:10])


def test_encoder_is_saved_once_and_reused(tmp_path, corpus, monkeypatch):
    first = pretrained_encoder(tmp_path, TINY, corpus, CFG, seed=0, progress=False)
    assert not first.reused and first.path.name.startswith("tiny-")
    assert sorted(p.name for p in first.path.iterdir()) == sorted([ENCODER_FILE, META_FILE, "vocab.txt"])

    import helpers.pretrain as pretrain

    monkeypatch.setattr(pretrain, "run_pretraining", lambda *a, **k: pytest.fail("must reuse, not pretrain"))
    again = pretrained_encoder(tmp_path, TINY, corpus, CFG, seed=0)
    assert again.reused and again.path == first.path and again.vocab == first.vocab
    assert all(torch.equal(again.state[k], v) for k, v in first.state.items())
    monkeypatch.undo()
    other = pretrained_encoder(tmp_path, TINY, corpus, dataclasses.replace(CFG, steps=2), seed=0, progress=False)
    assert other.path != first.path and not other.reused

    (first.path / ENCODER_FILE).write_bytes((first.path / ENCODER_FILE).read_bytes()[:-8])
    with pytest.raises(CheckpointError, match="encoder.pt is missing or not the file pretrain.json records; delete"):
        pretrained_encoder(tmp_path, TINY, corpus, CFG, seed=0)


def test_classifier_starts_from_the_pretrained_encoder(tmp_path, corpus):
    encoder = pretrained_encoder(tmp_path, TINY, corpus, CFG, seed=0, progress=False)
    start = EncoderStart("mlm", encoder.config, encoder.vocab, encoder.state, encoder)
    model = start.load_into(SentimentClassifier(start.config, 2))
    for name, value in model.bert.state_dict().items():
        assert torch.equal(value, encoder.state[name]), name
    two, one = start.fill_masks(["服务很[MASK]，质量[MASK]", "很[MASK]"], top_k=3)
    assert len(two) == 2 and [len(g) for g in one] == [3] and all(t in encoder.vocab for t, _ in two[1])
    assert all(p1 >= p2 for g in two + one for (_, p1), (_, p2) in zip(g, g[1:])), "best guess first"
    with pytest.raises(ConfigError, match="holds no \\[MASK\\]"):
        start.fill_masks(["很好"])
    assert start.history["loss"] and start.to_dict()["pretraining"]["folder"] == encoder.path.name


def toy_split(sentences) -> Split:
    texts, labels = sentences
    return Split(Dataset(texts, np.array(labels)), Dataset(texts[:2], np.array(labels[:2])),
                 Dataset(texts[2:4], np.array(labels[2:4])), ["negative", "positive"], "toy")


def test_where_the_classifier_starts(tmp_path, sentences, monkeypatch):
    import helpers.pretrain as pretrain

    split = toy_split(sentences)
    # the toy sentences stand in for People's Daily, whose 19,484 lines take seconds to tokenize
    monkeypatch.setattr(pretrain, "pretraining_corpus", lambda s: PretrainCorpus(s.train.texts * 3, [], "toy"))
    scratch = encoder_start(tmp_path, TINY, split, pretrain_steps=0)
    assert scratch.init == "scratch" and scratch.vocab == build_vocab(split.train.texts) and scratch.state is None
    assert scratch.config["vocab_size"] == len(scratch.vocab) and scratch.history is None
    assert not list(tmp_path.iterdir()), "from scratch, nothing is pretrained or written"
    model = SentimentClassifier(scratch.config, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert scratch.load_into(model) is model and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ConfigError, match="not from 01's pretraining"):
        scratch.fill_masks(["很[MASK]"])
    start = encoder_start(tmp_path, TINY, split, pretrain_steps=3, seed=0, progress=False)
    assert start.init == "mlm" and start.pretrained.meta["pretrain"]["steps"] == 3 and "pretrained here" in str(start)
    assert pretrain_config_from(TINY).steps == TINY.pretrain.steps and pretrain_config_from(TINY, 0).steps == 0
    with pytest.raises(ConfigError, match="steps >= 1"):
        pretrained_encoder(tmp_path, TINY, PretrainCorpus(["很好"], [], "x"), pretrain_config_from(TINY, 0), seed=0)


def test_pretraining_text_never_holds_valid_or_test_sentences(sentences):
    texts, labels = sentences
    y = np.array(labels)
    split = Split(Dataset(texts[:8], y[:8]), Dataset(texts[8:10], y[8:10]), Dataset(texts[10:], y[10:]),
                  ["negative", "positive"], "toy")
    corpus = pretraining_corpus(split)
    assert [s["texts"] for s in corpus.sources] == [19484, 8]
    held_out = set(split.valid.texts) | set(split.test.texts)
    assert not held_out & set(corpus.texts[-8:]) and corpus.texts[-8:] == split.train.texts
    assert not any("/n" in t or "/v" in t for t in corpus.texts[:2000]), "POS tags must be stripped"
