"""The bulk command: formats in and out, clear refusals, an OUTPUT written atomically, constant memory, and a
large file end to end on a tiny model."""

from __future__ import annotations

import csv
import json
import os
import time
import tracemalloc

import numpy as np
import pytest

from helpers.backends import Backend, Classifier
from helpers.classify import classify_file, count_lines, load_classifier, main
from helpers.data import load_corpus
from helpers.errors import ConfigError, DataError
from helpers.tokenizer import SentenceTokenizer, build_vocab

LABELS = ["negative", "positive"]
TEXTS = ["我的心情很差", "这家酒店的服务太好了，下次还会再来", "质量很差，不会再买了", "good 物流很快 👍",
         "还行吧" * 50]


class Rows(Backend):
    """Logits that identify the row (its real tokens and the sum of its ids); counts texts per call."""

    name = "rows"

    def __init__(self):
        super().__init__()
        self.batch_rows: list[int] = []

    def _run(self, input_ids, segment_ids):
        self.batch_rows.append(len(input_ids))
        return np.stack([(input_ids != 0).sum(1), input_ids.sum(1) / 1000.0], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def tokenizer():
    return SentenceTokenizer(build_vocab(TEXTS + ["物流很快", "服务态度"]), max_len=32)


@pytest.fixture()
def classifier(tokenizer):
    return Classifier(tokenizer, Rows(), LABELS)


def write_lines(path, texts):
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


def write_csv(path, rows, header):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_output(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def expected(classifier, texts):
    pred = classifier.predict(texts)
    return pred.labels, pred.probabilities.round(6)


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("out_ext", [".jsonl", ".csv"])
@pytest.mark.parametrize("in_ext", [".txt", ".csv", ".jsonl"])
def test_round_trip(tmp_path, classifier, in_ext, out_ext):
    ids = [f"id-{i}" for i in range(len(TEXTS))]
    src = tmp_path / f"in{in_ext}"
    if in_ext == ".txt":
        write_lines(src, TEXTS)
    elif in_ext == ".csv":
        write_csv(src, [[i, t, "x,\"y\"\nz"] for i, t in zip(ids, TEXTS)], ["id", "review", "note"])
    else:
        src.write_text("".join(json.dumps({"id": i, "review": t, "n": k}, ensure_ascii=False) + "\n"
                               for k, (i, t) in enumerate(zip(ids, TEXTS))), encoding="utf-8")
    column = "text" if in_ext == ".txt" else "review"
    dst = tmp_path / f"out{out_ext}"
    assert classify_file(classifier, src, dst, column=column, chunk=2, progress=False) == len(TEXTS)
    rows = read_output(dst)
    labels, probs = expected(classifier, TEXTS)
    assert [r[column] for r in rows] == TEXTS and [r["label"] for r in rows] == labels
    got = np.array([[float(r["p_negative"]), float(r["p_positive"])] for r in rows])
    np.testing.assert_allclose(got, probs, atol=1e-6)
    if in_ext != ".txt":  # the input's other fields come along
        assert [r["id"] for r in rows] == ids
    if in_ext == ".csv":
        assert {r["note"] for r in rows} == {"x,\"y\"\nz"}
    if in_ext == ".jsonl" and out_ext == ".jsonl":
        assert [r["n"] for r in rows] == list(range(len(TEXTS)))
    assert list(rows[0])[-3:] == ["label", "p_negative", "p_positive"]


def test_formats_from_flags_and_a_byte_order_mark(tmp_path, classifier):
    src = tmp_path / "reviews.data"
    src.write_text("\ufefftext,stars\n很好,5\n很差,1\n", encoding="utf-8")  # Excel's UTF-8 CSV starts with a BOM
    dst = tmp_path / "labels.out"
    classify_file(classifier, src, dst, input_format="csv", output_format="jsonl", progress=False)
    rows = read_output(dst.rename(tmp_path / "labels.jsonl"))
    assert [(r["text"], r["stars"]) for r in rows] == [("很好", "5"), ("很差", "1")]


def test_progress_bar_shows_sentences_per_second(tmp_path, classifier, capsys):
    src = write_lines(tmp_path / "in.txt", TEXTS * 20)
    classify_file(classifier, src, tmp_path / "out.jsonl", chunk=16, progress=True)
    err = capsys.readouterr().err
    assert "classify: 100%" in err and "100/100" in err and "sentences/s" in err


# ------------------------------------------------------------------------------------------ refusals
def test_bad_files_and_columns(tmp_path, classifier):
    def refused(src, message, error=DataError, **kw):
        dst = tmp_path / "out.jsonl"
        with pytest.raises(error, match=message):
            classify_file(classifier, src, dst, progress=False, **kw)
        assert not dst.exists() and not list(tmp_path.glob(".out.jsonl.*"))

    refused(tmp_path / "absent.txt", r"INPUT .*absent.txt does not exist")
    refused(write_lines(tmp_path / "in.xlsx", TEXTS), r"cannot tell the format of INPUT .*'.xlsx'.*--input-format",
            ConfigError)
    with pytest.raises(ConfigError, match=r"format of OUTPUT .*'.parquet'"):
        classify_file(classifier, write_lines(tmp_path / "in.txt", TEXTS), tmp_path / "out.parquet", progress=False)
    refused(write_csv(tmp_path / "no_col.csv", [["好", 1]], ["review", "stars"]),
            r"no_col.csv has no column 'text' \(its columns: 'review', 'stars'\); pass --column NAME")
    refused(write_csv(tmp_path / "clash.csv", [["好", "x"]], ["text", "label"]),
            r"clash.csv line 1: already has a field \['label'\], which the output adds")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    refused(tmp_path / "empty.csv", r"has no column 'text' \(its columns: none, the file is empty\)")
    (tmp_path / "ragged.csv").write_text("text\n好\n好,extra\n", encoding="utf-8")
    refused(tmp_path / "ragged.csv", r"ragged.csv line 3: has 2 values but the header names 1")
    (tmp_path / "bad.jsonl").write_text('{"text": "好"}\n{"text": "差"\n', encoding="utf-8")
    refused(tmp_path / "bad.jsonl", r"bad.jsonl line 2: is not JSON \(.*\); each line must be one JSON object")
    (tmp_path / "gap.jsonl").write_text('{"text": "好"}\n\n{"text": "差"}\n', encoding="utf-8")
    refused(tmp_path / "gap.jsonl", r"gap.jsonl line 2: is empty; each line must be one JSON object")
    (tmp_path / "list.jsonl").write_text('["好"]\n', encoding="utf-8")
    refused(tmp_path / "list.jsonl", r"list.jsonl line 1: is a JSON list, not an object with a 'text' field")
    (tmp_path / "field.jsonl").write_text('{"text": "好"}\n{"review": "差"}\n', encoding="utf-8")
    refused(tmp_path / "field.jsonl", r"field.jsonl line 2: has no field 'text' \(its fields: 'review'\)")
    (tmp_path / "number.jsonl").write_text('{"text": 5}\n', encoding="utf-8")
    refused(tmp_path / "number.jsonl", r"number.jsonl line 1: the 'text' value is a int, not a text")
    refused(write_lines(tmp_path / "blank.txt", ["好", "", "差"]), r"blank.txt line 2: the text in 'text' is empty")
    refused(write_lines(tmp_path / "zw.txt", ["好", "差", "\u200b\u200b"]),
            r"zw.txt line 3: the text has no token left after cleaning \('\\u200b\\u200b'")
    (tmp_path / "latin1.txt").write_bytes("好\n".encode() + "caf\xe9\n".encode("latin-1"))
    refused(tmp_path / "latin1.txt", r"latin1.txt is not UTF-8 text \(byte 0xe9\)")
    (tmp_path / "nothing.txt").write_text("", encoding="utf-8")
    refused(tmp_path / "nothing.txt", r"nothing.txt holds no record to classify")
    same = write_lines(tmp_path / "same.jsonl", ['{"text": "好"}'])
    with pytest.raises(ConfigError, match="is INPUT"):
        classify_file(classifier, same, same, progress=False)


def test_no_token_left_names_the_line_in_a_later_chunk(tmp_path, classifier):
    src = write_lines(tmp_path / "in.txt", ["好"] * 10 + ["\x00"] + ["差"] * 3)
    with pytest.raises(DataError, match=r"in.txt line 11: the text has no token left"):
        classify_file(classifier, src, tmp_path / "out.csv", chunk=4, progress=False)


# ------------------------------------------------------------------------------------------ atomic OUTPUT
class FailsOnCall(Classifier):
    """A Classifier whose n-th predict call raises ``error`` (a crash or Ctrl-C mid-way)."""

    def __init__(self, tokenizer, n, error):
        super().__init__(tokenizer, Rows(), LABELS)
        self.n, self.error, self.calls = n, error, 0

    def predict(self, texts):
        self.calls += 1
        if self.calls == self.n:
            raise self.error
        return super().predict(texts)


@pytest.mark.parametrize("error", [RuntimeError("the device fell over"), KeyboardInterrupt()])
def test_a_failure_mid_way_leaves_no_output_and_keeps_the_old_one(tmp_path, tokenizer, error):
    src = write_lines(tmp_path / "in.txt", TEXTS * 10)
    dst = tmp_path / "out.jsonl"
    with pytest.raises(type(error)):
        classify_file(FailsOnCall(tokenizer, 3, error), src, dst, chunk=5, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no OUTPUT, no temporary file
    dst.write_bytes(b"an earlier run's results\n\x00\xff")
    before = dst.read_bytes()
    with pytest.raises(type(error)):
        classify_file(FailsOnCall(tokenizer, 3, error), src, dst, chunk=5, progress=False)
    assert dst.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]
    classify_file(FailsOnCall(tokenizer, 0, error), src, dst, chunk=5, progress=False)  # a rerun starts clean
    assert len(read_output(dst)) == len(TEXTS) * 10


def test_a_failure_while_writing_leaves_no_output(tmp_path, classifier, monkeypatch):
    import helpers.classify as classify

    calls = []

    def full_disk(self, records, labels, probabilities, fields):
        calls.append(len(records))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(classify.Writer, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        classify_file(classifier, write_lines(tmp_path / "in.txt", TEXTS * 10), tmp_path / "out.csv", chunk=5,
                      progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"] and len(calls) == 2


# ------------------------------------------------------------------------------------------ constant memory
def test_memory_does_not_grow_with_the_file(tmp_path, tokenizer):
    """The same chunk size on a file 10x longer: the classifier never sees more than a chunk, and the peak of
    Python's allocations stays the same."""
    peaks = {}
    for n in (3_000, 30_000):
        src = write_lines(tmp_path / f"in{n}.txt", [TEXTS[i % 4] + str(i) for i in range(n)])
        backend = Rows()
        tracemalloc.start()
        classify_file(Classifier(tokenizer, backend, LABELS, batch_size=64), src, tmp_path / f"out{n}.jsonl",
                      chunk=500, progress=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert sum(backend.batch_rows) == n and max(backend.batch_rows) <= 64
        assert count_lines(src) == n == len(read_output(tmp_path / f"out{n}.jsonl"))
    assert peaks[30_000] < 1.5 * peaks[3_000], peaks


# ------------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """An artifacts folder as 01 and 02 leave it: a tiny checkpoint and its plain ONNX export."""
    from helpers.bench.models import architecture_model
    from helpers.export import onnx_from_classifier
    from helpers.model import save_checkpoint

    split = load_corpus(None, seed=42)[0]
    root = tmp_path_factory.mktemp("artifacts")
    vocab = build_vocab(split.train.texts)
    model = architecture_model("tiny", len(vocab), seed=3).model
    save_checkpoint(root / "checkpoint", model, vocab, labels=LABELS, max_len=64)
    onnx_from_classifier(model, root / "onnx" / "model.onnx", labels=LABELS, max_len=64, model_size="tiny")
    return root


def test_command_line_end_to_end(artifacts, tmp_path, capsys):
    src = write_lines(tmp_path / "in.txt", TEXTS)
    assert main(["--artifacts", str(artifacts), str(src), str(tmp_path / "out.csv"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "backend onnxruntime: model.onnx (onnxruntime-int8: no int8 file; onnxruntime-fused: no fused file)" in err
    assert "classified 5 sentences" in err and "sentences/s" in err
    clf = load_classifier(artifacts, device="cpu")
    labels, probs = expected(clf, TEXTS)
    rows = read_output(tmp_path / "out.csv")
    assert [r["label"] for r in rows] == labels
    np.testing.assert_allclose([[float(r[f"p_{x}"]) for x in LABELS] for r in rows], probs, atol=1e-6)
    # refusals come as one line on stderr and exit status 1
    assert main(["--artifacts", str(tmp_path), str(src), str(tmp_path / "o.jsonl"), "--no-progress"]) == 1
    assert "error: no checkpoint at" in capsys.readouterr().err
    assert main(["--artifacts", str(artifacts), str(tmp_path / "none.txt"), str(tmp_path / "o.jsonl")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["--artifacts", str(artifacts), "--backend", "tensorrt-fp16", str(src), str(tmp_path / "o.jsonl")]) == 1
    assert "error: tensorrt-fp16: no engine-fp16 model file" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_a_changed_vocabulary_stops_the_command(artifacts, tmp_path, capsys):
    import shutil

    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    vocab = copy / "checkpoint" / "vocab.txt"
    lines = vocab.read_text(encoding="utf-8").splitlines()
    vocab.write_text("\n".join(lines[:5] + lines[6:7] + lines[5:6] + lines[7:]) + "\n", encoding="utf-8")
    src = write_lines(tmp_path / "in.txt", TEXTS)
    assert main(["--artifacts", str(copy), str(src), str(tmp_path / "out.jsonl"), "--no-progress"]) == 1
    assert "vocab.txt is not the file this checkpoint was saved with" in capsys.readouterr().err


def test_a_large_file_end_to_end(artifacts, tmp_path, capsys):
    """CLASSIFY_TEST_LINES lines (default 5,000; 100,000 by hand) built from corpus sentences, through the
    command on the tiny model; the rate is printed."""
    n = int(os.environ.get("CLASSIFY_TEST_LINES", "5000"))
    split = load_corpus(None, seed=42)[0]
    corpus = split.train.texts + split.valid.texts + split.test.texts
    src = tmp_path / "big.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "text": corpus[i % len(corpus)]}, ensure_ascii=False) + "\n")
    started = time.perf_counter()
    assert main(["--artifacts", str(artifacts), str(src), str(tmp_path / "big.csv"), "--device", "cpu"]) == 0
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert "sentences/s" in err and f"{n}/{n}" in err
    with open(tmp_path / "big.csv", encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        count = 0
        for count, row in enumerate(rows, start=1):
            assert row["id"] == str(count - 1) and row["label"] in LABELS
    assert count == n
    with capsys.disabled():
        print(f"{n:,} lines in {seconds:.1f} s: {n / seconds:,.0f} sentences/s end to end (command, tiny model)")


def test_texts_of_one_chunk_per_call(tmp_path, tokenizer):
    seen = []

    class Sizes(Classifier):
        def predict(self, texts):
            seen.append(len(texts))
            return super().predict(texts)

    classify_file(Sizes(tokenizer, Rows(), LABELS), write_lines(tmp_path / "in.txt", TEXTS * 7),
                  tmp_path / "out.jsonl", chunk=8, progress=False)
    assert seen == [8, 8, 8, 8, 3]
    seen.clear()  # the default: 2,048 texts per step on a CPU, four of the Classifier's chunks on a GPU
    classify_file(Sizes(tokenizer, Rows(), LABELS), write_lines(tmp_path / "in.txt", TEXTS * 500),
                  tmp_path / "out.jsonl", progress=False)
    assert seen == [2048, 452]
    seen.clear()
    classify_file(Sizes(tokenizer, Rows(), LABELS, chunk=100), tmp_path / "in.txt", tmp_path / "out.jsonl",
                  progress=False)
    assert seen == [400] * 6 + [100]


def test_the_pytorch_backend_runs_the_checkpoint_model(artifacts, tmp_path):
    """A PyTorch backend name takes the checkpoint's model; it answers as the exported graph does."""
    src = write_lines(tmp_path / "in.txt", TEXTS)
    assert main(["--artifacts", str(artifacts), "--backend", "pytorch", str(src), str(tmp_path / "out.csv"),
                 "--no-progress"]) == 0
    rows = read_output(tmp_path / "out.csv")
    labels, probs = expected(load_classifier(artifacts, backend="onnxruntime"), TEXTS)
    assert [r["label"] for r in rows] == labels
    np.testing.assert_allclose([[float(r[f"p_{x}"]) for x in LABELS] for r in rows], probs, atol=1e-4)
