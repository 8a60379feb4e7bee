import importlib.metadata
import json

import numpy as np
import pytest
import torch

from helpers.config import MODEL_SIZES
from helpers.errors import CheckpointError, ConfigError
from helpers.io import sha256_file
from helpers.model import (
    META_FILE, VOCAB_FILE, WEIGHTS_FILE, SentimentClassifier, bert_config, build_encoder, load_checkpoint,
    read_pretrained_dir, save_checkpoint,
)
from helpers.pretrain import encoder_start


def test_logits_shape_and_int32_inputs(tiny_model, tokenizer):
    enc = tokenizer.encode_batch(["我的心情很差", "很好", "服务态度很差"])
    with torch.no_grad():
        a = tiny_model(torch.from_numpy(enc.input_ids), torch.from_numpy(enc.segment_ids))
        b = tiny_model(torch.from_numpy(enc.input_ids).long(), torch.from_numpy(enc.segment_ids).long())
    assert a.shape == (3, 2) and torch.equal(a, b)


def test_padding_does_not_change_logits(tiny_model, tokenizer):
    short = tokenizer.encode_batch(["很好"])
    padded = tokenizer.encode_batch(["很好"], pad_to=20)
    with torch.no_grad():
        a = tiny_model(torch.from_numpy(short.input_ids), torch.from_numpy(short.segment_ids))
        b = tiny_model(torch.from_numpy(padded.input_ids), torch.from_numpy(padded.segment_ids))
    assert torch.allclose(a, b, atol=1e-5)


def test_bert4torch_traps_are_handled(tiny_model):
    layer = tiny_model.bert.encoderLayer[0]
    assert layer.feedForward.intermediateDense.bias is not None, "bias=True must reach the FFN layers"
    assert layer.attnLayerNorm.norm_mode == "torch_buildin"


def test_one_label_is_refused():
    with pytest.raises(ConfigError, match="at least 2 labels"):
        SentimentClassifier(bert_config(MODEL_SIZES["tiny"], 50), num_labels=1)


@pytest.mark.parametrize("wrong, fix", [({"bias": False}, "bias=True"), ({"norm_mode": "normal"}, "norm_mode='torch_buildin'")])
def test_an_encoder_built_without_the_fixes_is_refused(wrong, fix):
    from bert4torch.models import build_transformer_model

    options = {"with_pool": True, "bias": True, "norm_mode": "torch_buildin", **wrong}
    bert = build_transformer_model(config_path=None, checkpoint_path=None, **options,
                                   **bert_config(MODEL_SIZES["tiny"], 50))
    with pytest.raises(ConfigError, match=f"build_transformer_model\\(\\.\\.\\., {fix}\\) as notebook 01 does"):
        SentimentClassifier(bert, 2)


def test_a_built_encoder_and_its_config_make_the_same_classifier():
    config = bert_config(MODEL_SIZES["tiny"], 50)
    torch.manual_seed(3)
    built = SentimentClassifier(build_encoder(config), 2)
    torch.manual_seed(3)
    from_config = SentimentClassifier(config, 2)
    assert built.config == from_config.config == config, "the checkpoint records exactly the architecture"
    assert all(torch.equal(v, from_config.state_dict()[k]) for k, v in built.state_dict().items())


def _save(path, model, tokenizer, **kw):
    return save_checkpoint(path, model, tokenizer.vocab, labels=["negative", "positive"], max_len=tokenizer.max_len,
                           meta={"model_size": "tiny", "metrics": {"test_accuracy": 0.5}}, **kw)


def test_checkpoint_round_trip(tmp_path, tiny_model, tokenizer):
    path = _save(tmp_path / "ckpt", tiny_model, tokenizer)
    assert sorted(p.name for p in path.iterdir()) == sorted([META_FILE, VOCAB_FILE, WEIGHTS_FILE])
    ckpt = load_checkpoint(path)
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    assert ckpt.labels == ["negative", "positive"] and ckpt.max_len == tokenizer.max_len
    assert {"torch", "bert4torch"} <= set(meta["versions"]) and meta["fingerprint"]
    assert meta["sha256"] == {n: sha256_file(path / n) for n in (WEIGHTS_FILE, VOCAB_FILE)}
    assert meta["versions"]["bert4torch"] == importlib.metadata.version("bert4torch")  # bert4torch has no __version__
    ids = torch.from_numpy(tokenizer.encode_batch(["质量太差了"]).input_ids)
    with torch.no_grad():
        assert torch.equal(ckpt.model(ids, torch.zeros_like(ids)), tiny_model(ids, torch.zeros_like(ids)))


def test_checkpoint_is_never_overwritten_silently(tmp_path, tiny_model, tokenizer):
    path = _save(tmp_path / "ckpt", tiny_model, tokenizer)
    before = (path / WEIGHTS_FILE).read_bytes()
    with pytest.raises(CheckpointError, match="already holds a trained model.*overwrite=True"):
        _save(path, tiny_model, tokenizer)
    assert (path / WEIGHTS_FILE).read_bytes() == before
    _save(path, tiny_model, tokenizer, overwrite=True)
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("ckpt.previous-")]
    assert len(backups) == 1 and (backups[0] / WEIGHTS_FILE).read_bytes() == before


def test_unreadable_checkpoints_are_explained(tmp_path, tiny_model, tokenizer):
    with pytest.raises(CheckpointError, match="run notebook 01_train first"):
        load_checkpoint(tmp_path / "missing")
    path = _save(tmp_path / "ckpt", tiny_model, tokenizer)
    (path / WEIGHTS_FILE).write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="model.pt is not the file this checkpoint was saved with"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt2", tiny_model, tokenizer)
    (path / META_FILE).write_text("{", encoding="utf-8")
    with pytest.raises(CheckpointError, match="metadata .* is unreadable"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt3", tiny_model, tokenizer)
    (path / VOCAB_FILE).unlink()
    with pytest.raises(CheckpointError, match="vocab.txt is missing"):
        load_checkpoint(path)


def test_shuffled_vocab_or_changed_weights_are_refused(tmp_path, tiny_model, tokenizer):
    """A vocab.txt of the right size in another order loaded silently before and dropped accuracy to chance."""
    path = _save(tmp_path / "ckpt", tiny_model, tokenizer)
    lines = (path / VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    shuffled = lines[:5] + lines[5:][::-1]
    (path / VOCAB_FILE).write_text("\n".join(shuffled) + "\n", encoding="utf-8")
    assert len(shuffled) == tokenizer.vocab_size
    with pytest.raises(CheckpointError, match="vocab.txt is not the file this checkpoint was saved with"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt2", tiny_model, tokenizer)
    state = torch.load(path / WEIGHTS_FILE, weights_only=True)
    state["dense.bias"] = state["dense.bias"] + 1
    torch.save(state, path / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="model.pt is not the file"):
        load_checkpoint(path)
    path = _save(tmp_path / "ckpt3", tiny_model, tokenizer)
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    del meta["sha256"]
    (path / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(CheckpointError, match="records no sha256"):
        load_checkpoint(path)


def test_transformers_checkpoint_loads_with_matching_hidden_states(tmp_path):
    """A tiny random `transformers` BertModel saved to disk must give bert4torch identical hidden states."""
    transformers = pytest.importorskip("transformers", reason="transformers is in environment/requirements-test.txt")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64)
    hf = transformers.BertModel(cfg).eval()
    with torch.no_grad():  # make biases non-zero so that a dropped bias would show
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    hf.save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(55)]) + "\n")
    start = encoder_start(tmp_path / "unused", MODEL_SIZES["tiny"], None, pretrained_dir=tmp_path)
    assert start.init == "pretrained_dir" and start.config["hidden_size"] == 32
    model = start.load_into(SentimentClassifier(start.config, num_labels=2)).eval()
    vocab = start.vocab
    ids = torch.randint(5, 60, (2, 12))
    ids[1, 8:] = 0
    seg = torch.zeros_like(ids)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=seg, attention_mask=(ids != 0).long())
        seq, pooled = model.bert([ids, seg])
    assert len(vocab) == 60
    np.testing.assert_allclose(seq[0].numpy(), ref.last_hidden_state[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(seq[1, :8].numpy(), ref.last_hidden_state[1, :8].numpy(), atol=1e-5)
    np.testing.assert_allclose(pooled.numpy(), ref.pooler_output.numpy(), atol=1e-5)


def test_pretrained_dir_problems_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_pretrained_dir(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="must hold config.json, model.safetensors"):
        read_pretrained_dir(tmp_path)
