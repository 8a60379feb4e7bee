"""Classify a file of texts with the deployed model: ``python -m helpers.classify --artifacts DIR INPUT OUTPUT``.

INPUT is text lines (``.txt``, one text per line), CSV (``.csv``, with a header; the texts in ``--column``,
default ``text``) or JSON Lines (``.jsonl``, one object per line; the texts in its ``--column`` field).
OUTPUT is JSON Lines (``.jsonl``) or CSV (``.csv``): each input record (its fields kept; a text line becomes
``{"text": ...}``) with ``label`` and one probability per label (``p_negative``, ``p_positive``, rounded to 6
decimals), in the input's order. ``--input-format`` / ``--output-format`` replace the guess from the
extension.

* **Model**: the checkpoint's vocabulary (checked against the sha256 ``checkpoint.json`` records) and labels,
  and the best backend this machine runs among the model files 02 and 04 wrote
  (:func:`helpers.backends.registry.best_backend`, the same choice as 07's served model), batched as the
  Classifier does on that device. ``--backend`` names another one of the registry.
* **Streaming**: INPUT is read ``--chunk`` records at a time (2,048 on a CPU, 16,384 on a GPU); memory stays
  the same for any file size. A progress bar shows sentences per second. While the model runs one chunk, a
  thread writes the previous one.
* **Atomic OUTPUT**: the results go to a hidden temporary file beside OUTPUT (``.NAME.*.tmp``), which
  replaces OUTPUT only when every record is classified. A failed or interrupted run (an error, Ctrl-C,
  SIGTERM) removes it and leaves an existing OUTPUT byte for byte as it was. A rerun starts clean: there is no
  resuming, and a run killed outright (SIGKILL, power loss) may leave the hidden temporary file, which can
  be deleted.
* **Bad input** is refused with the file and line: a missing file, an unknown extension, a CSV without the
  column, a JSONL line that is not a JSON object or lacks the field, a text that is not a string, or empty
  (nothing left after cleaning), bytes that are not UTF-8, and input fields named like the added ones.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence

from .config import CHECKPOINT_META_FILE, ArtifactPaths
from .errors import ConfigError, DataError, SeriesError
from .io import atomic_write, read_json
from .tokenizer import EmptyTextError

#: File extension -> format, for INPUT and OUTPUT.
INPUT_FORMATS = {".txt": "lines", ".csv": "csv", ".jsonl": "jsonl"}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".csv": "csv"}
#: Records read, classified and written per step on a CPU (a progress update every few seconds); on a GPU, four
#: of the Classifier's own chunks (16,384 with its defaults), so its worker thread keeps the device busy.
CPU_CHUNK = 2048
#: Decimals kept of each probability.
DECIMALS = 6


@dataclass(frozen=True)
class Record:
    """One input record: where it was (1-based line), its fields, and its text."""

    line: int
    fields: dict[str, Any]
    text: str


def file_format(path: Path, given: str | None, formats: dict[str, str], role: str, flag: str) -> str:
    """``given``, or the format ``path``'s extension names; :class:`ConfigError` when neither says."""
    if given:
        if given not in set(formats.values()):
            raise ConfigError(f"{flag} must be one of {sorted(set(formats.values()))}, got {given!r}.")
        return given
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {role} {path} from its extension {path.suffix or '(none)'!r}: name it "
            f"{', '.join(formats)}, or pass {flag} {'/'.join(sorted(set(formats.values())))}."
        ) from None


class Reader:
    """Records of INPUT, read lazily (one line or CSV row at a time), each checked as it comes."""

    def __init__(self, path: Path, fmt: str, column: str, added: Sequence[str]) -> None:
        self.path, self.fmt, self.column, self.added = path, fmt, column, tuple(added)
        self.fields: list[str] = [column] if fmt == "lines" else []

    def _fail(self, line: int, what: str) -> DataError:
        return DataError(f"{self.path} line {line}: {what}")

    def _clashes(self, names: Sequence[str], line: int) -> None:
        clash = [n for n in self.added if n in names]
        if clash:
            raise self._fail(line, f"already has {'fields' if len(clash) > 1 else 'a field'} {clash}, which the "
                                   f"output adds ({', '.join(self.added)}); rename {'them' if len(clash) > 1 else 'it'}.")

    def _text(self, value: Any, line: int) -> str:
        if not isinstance(value, str):
            raise self._fail(line, f"the {self.column!r} value is a {type(value).__name__}, not a text.")
        if not value.strip():
            raise self._fail(line, f"the text in {self.column!r} is empty; remove the line or give it a text.")
        return value

    def records(self, stream: IO[str]) -> Iterator[Record]:
        """Every record of ``stream`` (INPUT opened as UTF-8 text, a byte-order mark dropped, newline='')."""
        if self.fmt == "csv":
            yield from self._csv(stream)
            return
        for line, raw in enumerate(stream, start=1):
            raw = raw.rstrip("\r\n")
            if self.fmt == "lines":
                yield Record(line, {self.column: raw}, self._text(raw, line))
                continue
            if not raw.strip():
                raise self._fail(line, "is empty; each line must be one JSON object (remove blank lines).")
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise self._fail(line, f"is not JSON ({exc.msg} at column {exc.colno}); each line must be one "
                                       "JSON object.") from None
            if not isinstance(obj, dict):
                raise self._fail(line, f"is a JSON {type(obj).__name__}, not an object with a {self.column!r} field.")
            if self.column not in obj:
                raise self._fail(line, f"has no field {self.column!r} (its fields: {', '.join(map(repr, obj))}); "
                                       "pass --column NAME.")
            self._clashes(list(obj), line)
            if not self.fields:
                self.fields = list(obj)
            yield Record(line, obj, self._text(obj[self.column], line))

    def _csv(self, stream: IO[str]) -> Iterator[Record]:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        if self.column not in header:
            raise DataError(f"{self.path} has no column {self.column!r} (its columns: "
                            f"{', '.join(map(repr, header)) or 'none, the file is empty'}); pass --column NAME.")
        self._clashes(header, 1)
        self.fields = list(header)
        for row in reader:
            if None in row:  # more values than the header has names
                raise self._fail(reader.line_num, f"has {len(header) + len(row[None])} values but the header "
                                                  f"names {len(header)}.")
            yield Record(reader.line_num, row, self._text(row[self.column] or "", reader.line_num))


class Writer:
    """Writes classified records to an open OUTPUT in its format."""

    def __init__(self, stream: IO[str], fmt: str, labels: Sequence[str]) -> None:
        self.stream, self.fmt = stream, fmt
        self.added = ["label", *(f"p_{name}" for name in labels)]
        self._csv: csv.DictWriter | None = None

    def write(self, records: Sequence[Record], labels: Sequence[str], probabilities: Any, fields: list[str]) -> None:
        rounded = probabilities.round(DECIMALS).tolist()
        rows = ({**r.fields, **dict(zip(self.added, [label, *p]))} for r, label, p in zip(records, labels, rounded))
        if self.fmt == "jsonl":
            self.stream.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            return
        if self._csv is None:
            self._csv = csv.DictWriter(self.stream, [*fields, *self.added], restval="", extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerows(rows)


def count_lines(path: Path) -> int | None:
    """Records in a text-lines or JSONL file (its lines, read in blocks: fast, constant memory)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def classify_file(classifier: Any, input_path: str | Path, output_path: str | Path, *, column: str = "text",
                  input_format: str | None = None, output_format: str | None = None, chunk: int | None = None,
                  progress: bool = True, log: Callable[[str], None] | None = None) -> int:
    """Classify every record of ``input_path`` with ``classifier`` (a :class:`~helpers.backends.Classifier`)
    and write ``output_path`` atomically (module docstring); returns the number of records."""
    from .progress import tqdm

    src, dst = Path(input_path), Path(output_path)
    in_fmt = file_format(src, input_format, INPUT_FORMATS, "INPUT", "--input-format")
    out_fmt = file_format(dst, output_format, OUTPUT_FORMATS, "OUTPUT", "--output-format")
    if not src.is_file():
        raise DataError(f"INPUT {src} does not exist or is not a file.")
    if dst.exists() and dst.resolve() == src.resolve():
        raise ConfigError(f"OUTPUT {dst} is INPUT; write the results to another file.")
    if chunk is None:
        chunk = 4 * classifier.chunk if getattr(classifier, "chunk", 0) else CPU_CHUNK
    if chunk < 1:
        raise ConfigError(f"--chunk must be at least 1, got {chunk}.")
    labels = list(classifier.labels)
    total = count_lines(src) if in_fmt != "csv" else None
    done = 0

    def write_all(tmp: Path) -> None:
        nonlocal done
        with open(src, encoding="utf-8-sig", newline="") as fin, open(tmp, "w", encoding="utf-8", newline="") as fout, \
                tqdm(total=total, unit=" sentences", desc="classify", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify-writer") as writer_thread:
            writer = Writer(fout, out_fmt, labels)
            reader = Reader(src, in_fmt, column, writer.added)
            records = reader.records(fin)
            pending = None
            try:
                while True:
                    batch = list(itertools.islice(records, chunk))
                    if not batch:
                        break
                    try:
                        pred = classifier.predict([r.text for r in batch])
                    except EmptyTextError as exc:
                        raise DataError(f"{src} line {batch[exc.position].line}: the text has no token left after "
                                        f"cleaning ({batch[exc.position].text[:20]!r}: whitespace, control and "
                                        "zero-width characters only); remove the line or give it a text.") from None
                    if pending is not None:
                        pending.result()  # an error while writing the previous chunk is raised here
                    pending = writer_thread.submit(writer.write, batch, pred.labels, pred.probabilities, reader.fields)
                    done += len(batch)
                    bar.update(len(batch))
            except UnicodeDecodeError as exc:
                raise DataError(f"{src} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); convert it to "
                                "UTF-8.") from None
            finally:
                if pending is not None:
                    pending.result()
        if done == 0:
            raise DataError(f"{src} holds no record to classify.")

    started = time.perf_counter()
    atomic_write(dst, write_all)
    seconds = time.perf_counter() - started
    if log is not None:
        log(f"classified {done:,} sentences in {seconds:.1f} s ({done / seconds:,.0f} sentences/s) -> {dst}")
    return done


def load_classifier(artifacts: str | Path, *, backend: str | None = None, device: str | None = None,
                    threads: int = 0, log: Callable[[str], None] | None = None) -> Any:
    """The Classifier of an artifacts folder: the checkpoint's checked vocabulary and labels, and ``backend``
    (a registry name; default: the best one of ``device``, which defaults to ``gpu`` when a GPU is visible)."""
    from .backends import Classifier
    from .backends.registry import BACKENDS, best_backend, model_files, open_backend
    from .machine import visible_gpus
    from .model import load_checkpoint
    from .tokenizer import checkpoint_tokenizer

    paths = ArtifactPaths.at(artifacts)
    tokenizer = checkpoint_tokenizer(paths.checkpoint)
    labels = list(read_json(paths.checkpoint / CHECKPOINT_META_FILE)["labels"])
    files = model_files(paths.onnx, paths.trt)
    if backend is None:
        choice = best_backend(files, device or ("gpu" if visible_gpus() else "cpu"))
        backend = choice.name
        if log is not None:
            log(f"backend {choice.describe()}")
    spec = BACKENDS.get(backend)
    model = load_checkpoint(paths.checkpoint).model if spec is not None and spec.needs_model else None
    opened = open_backend(backend, files, threads=threads, model=model)
    model_labels = list(getattr(opened, "labels", []) or [])
    if model_labels and model_labels != labels:
        opened.close()
        raise ConfigError(f"the model file's labels {model_labels} are not the checkpoint's {labels}; re-run "
                          "02_onnx_export for this checkpoint.")
    return Classifier(tokenizer, opened, labels)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="text lines (.txt), CSV (.csv) or JSON Lines (.jsonl)")
    parser.add_argument("output", metavar="OUTPUT", help="JSON Lines (.jsonl) or CSV (.csv)")
    parser.add_argument("--artifacts", required=True, metavar="DIR", help="the series' artifacts folder (01, 02, 04)")
    parser.add_argument("--column", default="text",
                        help="the CSV column or JSON field holding the texts (default: text)")
    parser.add_argument("--input-format", choices=sorted(set(INPUT_FORMATS.values())),
                        help="instead of INPUT's extension")
    parser.add_argument("--output-format", choices=sorted(set(OUTPUT_FORMATS.values())),
                        help="instead of OUTPUT's extension")
    parser.add_argument("--backend", help="a backend name of helpers.backends.registry (default: the best one here)")
    parser.add_argument("--device", choices=("cpu", "gpu"),
                        help="where the best backend is looked for (default: gpu if one is visible)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime CPU threads (0: every core)")
    parser.add_argument("--chunk", type=int, help=f"records per step (default: {CPU_CHUNK} on a CPU, 16384 on a GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line (module docstring); returns the exit status: 0 done, 1 refused or failed, 130 interrupted."""
    args = _parser().parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    # SIGTERM unwinds like Ctrl-C, so the temporary file is removed on the way out.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        classifier = load_classifier(args.artifacts, backend=args.backend, device=args.device, threads=args.threads,
                                     log=log)
        with classifier.backend:
            classify_file(classifier, args.input, args.output, column=args.column, input_format=args.input_format,
                          output_format=args.output_format, chunk=args.chunk, progress=not args.no_progress, log=log)
    except SeriesError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log(f"interrupted: {args.output} was not written (an existing one is unchanged).")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
