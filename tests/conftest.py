"""Fixtures shared by the unit tests: a small corpus and a tiny model built in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.config import MODEL_SIZES
from helpers.model import SentimentClassifier, bert_config
from helpers.tokenizer import SentenceTokenizer, build_vocab

POS = ["这家店的服务很好", "质量不错，很满意", "物流很快，包装完好", "非常喜欢，推荐购买", "性价比很高", "酒店干净，早餐丰富"]
NEG = ["质量太差了", "服务态度很差", "物流太慢，不满意", "再也不会买了", "房间又脏又吵", "我的心情很差"]


@pytest.fixture(scope="session")
def sentences() -> tuple[list[str], list[int]]:
    return POS + NEG, [1] * len(POS) + [0] * len(NEG)


@pytest.fixture(scope="session")
def tokenizer(sentences) -> SentenceTokenizer:
    return SentenceTokenizer(build_vocab(sentences[0]), max_len=32)


@pytest.fixture()
def tiny_model(tokenizer) -> SentimentClassifier:
    import torch

    torch.manual_seed(0)
    return SentimentClassifier(bert_config(MODEL_SIZES["tiny"], tokenizer.vocab_size), num_labels=2).eval()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
