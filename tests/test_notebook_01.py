"""Notebook 01 run the way a user runs it (papermill), and the cells it shows run here.

A refused run must stop at its first cell, before it writes anything; a run that fails later - here, a model
that misses the model size's accuracy floor, with overwrite=True - must stop before the save, saying what to
change. Either way every file of the model already kept (checkpoint and data split) stays byte for byte as it was.

01 writes out the model's construction (``build_transformer_model``) and the first training step; the tests
below run those very cells (found by their tags) and prove they are what the helpers do everywhere else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.config import ArtifactPaths
from test_keep import files, keep, toy_split

pm = pytest.importorskip("papermill", reason="papermill is in environment/requirements.txt")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_train.ipynb"


@pytest.fixture()
def kept(tmp_path, tiny_model, tokenizer, sentences, monkeypatch):
    for key in [k for k in os.environ if k.startswith("SERIES_")]:  # the notebook must see only our parameters
        monkeypatch.delenv(key)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    paths = ArtifactPaths.at(tmp_path / "artifacts")
    keep(paths, tiny_model, tokenizer, toy_split(sentences, 0))
    return paths


def run_01(paths: ArtifactPaths, out: Path, **params) -> tuple[str, str, str]:
    """Execute 01; returns the failing cell's source, the error's name and its message."""
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), progress_bar=False,
                            parameters={"model_size": "tiny", "artifacts_dir": str(paths.root), **params})
    executed = json.loads(out.read_text(encoding="utf-8"))
    failed = [c for c in executed["cells"] if c["cell_type"] == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1
    return "".join(failed[0]["source"]), info.value.ename, info.value.evalue


def test_refused_at_the_first_cell_before_anything_is_written(kept, tmp_path):
    before = files(kept.root)
    source, error, _ = run_01(kept, tmp_path / "refused.ipynb")
    assert error == "CheckpointError" and "refuse_to_replace(paths.checkpoint" in source
    assert files(kept.root) == before
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]


def test_a_model_failing_its_checks_is_never_saved(kept, tmp_path):
    before = files(kept.root)
    # a learning rate that cannot move the weights: the model stays near chance, below tiny's floor
    source, error, message = run_01(kept, tmp_path / "failed.ipynb", overwrite=True, pretrain_steps=0, lr=1e-12,
                                    batch_size=256, max_len=32)
    assert error == "AssertionError" and "size.accuracy_floor" in source
    assert "the model did not learn" in message and "batch_size 256 with lr 1e-12 (given)" in message
    assert "or lr=None (the model size's rate, scaled to batch_size)" in message
    assert files(kept.root) == before
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]


# ------------------------------------------------------------------------------- the cells 01 shows, run here
def tagged_cells(tag: str) -> list[str]:
    """The source of every code cell of 01 tagged ``tag``, in order."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    found = ["".join(c["source"]) for c in cells
             if c["cell_type"] == "code" and tag in c.get("metadata", {}).get("tags", [])]
    assert found, f"01 has no code cell tagged {tag!r}"
    return found


def build_with_01(config, seed=7, source=None):
    """Run 01's model-building cell (or ``source``) for ``config``; returns the model it made."""
    from types import SimpleNamespace

    from helpers.data import Dataset, Split

    toy = Dataset(["好"], np.array([1]))
    namespace = {"seed": seed, "start": SimpleNamespace(config=config),
                 "split": Split(toy, toy, toy, ["negative", "positive"], "toy")}
    exec(source or tagged_cells("build-model")[0], namespace)
    return namespace["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())


@pytest.fixture(scope="module")
def tiny_config():
    from helpers.config import MODEL_SIZES
    from helpers.model import bert_config

    return bert_config(MODEL_SIZES["tiny"], 60)


def test_01_builds_its_model_seeded(tiny_config):
    """Issue 21, defect 15: deleting the seed_everything(...) call before the model is built went unnoticed.
    01's cell, run twice, must give the same initial weights; without its seeding line it must not."""
    source = tagged_cells("build-model")[0]
    assert same_weights(build_with_01(tiny_config).state_dict(), build_with_01(tiny_config).state_dict())
    unseeded = "\n".join(line for line in source.splitlines() if "seed_everything(seed)" not in line)
    assert unseeded != source, "01's model cell must call seed_everything(seed) itself"
    a, b = build_with_01(tiny_config, source=unseeded), build_with_01(tiny_config, source=unseeded)
    assert not same_weights(a.state_dict(), b.state_dict()), "an unseeded build must differ (else this test proves nothing)"
    assert not same_weights(build_with_01(tiny_config, seed=7).state_dict(),
                            build_with_01(tiny_config, seed=8).state_dict()), "the seed parameter must reach it"


def test_01s_build_is_the_one_checkpoints_are_rebuilt_with(tiny_config):
    """01 writes the build_transformer_model call out; load_checkpoint rebuilds through helpers.model.build_encoder.
    Both must make the same model: same config recorded, same parameters, same initial weights from one seed."""
    from helpers.model import SentimentClassifier
    from helpers.train import seed_everything

    shown = build_with_01(tiny_config, seed=11)
    seed_everything(11)
    rebuilt = SentimentClassifier(tiny_config, num_labels=2)
    assert shown.config == rebuilt.config == tiny_config
    assert same_weights(shown.state_dict(), rebuilt.state_dict())
    source = tagged_cells("build-model")[0]
    assert "bias=True" in source and 'norm_mode="torch_buildin"' in source and "with_pool=True" in source


def test_01s_training_step_is_one_step_of_the_loop(tokenizer, sentences):
    """01 takes the first step in its own cells, then FineTuning.run() takes the rest: the weights and the
    history must be exactly those of the loop taking every step."""
    from helpers.config import MODEL_SIZES
    from helpers.data import Dataset, Split
    from helpers.model import SentimentClassifier, bert_config
    from helpers.train import FineTuning, TrainConfig

    texts, labels = sentences
    ds = Dataset(texts * 3, np.array(labels * 3))
    split = Split(ds, Dataset(texts, np.array(labels)), Dataset(texts, np.array(labels)), ["negative", "positive"], "t")
    cfg = TrainConfig(epochs=2, batch_size=8, lr=3e-3)

    def fine_tuning():
        torch.manual_seed(0)
        model = SentimentClassifier(bert_config(MODEL_SIZES["tiny"], tokenizer.vocab_size), 2)
        return FineTuning(model, tokenizer, split, cfg)

    loop = fine_tuning()
    loop.run(progress=False)
    shown = fine_tuning()
    namespace = {"torch": torch, "training": shown, "model": shown.model, "cfg": cfg,
                 "optimizer": shown.optimizer, "scheduler": shown.scheduler}
    for source in tagged_cells("training-step"):
        exec(source, namespace)
    assert shown.steps_done == 1
    shown.run(progress=False)
    assert shown.history.step_loss == loop.history.step_loss and shown.history.epochs == loop.history.epochs
    assert same_weights(shown.model.state_dict(), loop.model.state_dict())
