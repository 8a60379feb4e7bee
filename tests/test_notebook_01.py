"""Notebook 01 run the way a user runs it (papermill) into an artifacts folder that already holds a model.

A refused run must stop at its first cell, before it writes anything; a run that fails later - here, a model
that misses the model size's accuracy floor, with overwrite=True - must stop before the save. Either way every
file of the model already kept (checkpoint and data split) stays byte for byte as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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


def run_01(paths: ArtifactPaths, out: Path, **params) -> tuple[str, str]:
    """Execute 01; returns the failing cell's source and the error's name."""
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(NOTEBOOK), str(out), cwd=str(NOTEBOOK.parent), progress_bar=False,
                            parameters={"model_size": "tiny", "artifacts_dir": str(paths.root), **params})
    executed = json.loads(out.read_text(encoding="utf-8"))
    failed = [c for c in executed["cells"] if c["cell_type"] == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1
    return "".join(failed[0]["source"]), info.value.ename


def test_refused_at_the_first_cell_before_anything_is_written(kept, tmp_path):
    before = files(kept.root)
    source, error = run_01(kept, tmp_path / "refused.ipynb")
    assert error == "CheckpointError" and "refuse_to_replace(paths.checkpoint" in source
    assert files(kept.root) == before
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]


def test_a_model_failing_its_checks_is_never_saved(kept, tmp_path):
    before = files(kept.root)
    # a learning rate that cannot move the weights: the model stays near chance, below tiny's floor
    source, error = run_01(kept, tmp_path / "failed.ipynb", overwrite=True, pretrain_steps=0, lr=1e-12,
                           batch_size=256, max_len=32)
    assert error == "AssertionError" and "size.accuracy_floor" in source
    assert files(kept.root) == before
    assert sorted(p.name for p in kept.root.iterdir()) == ["checkpoint", "data"]
