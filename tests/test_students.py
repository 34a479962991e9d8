"""Students: the packaged SmolLM2 GGUF converts once to a plain safetensors folder with identical logits."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import students  # noqa: E402
from pst_core.train.strategies import SEM, SEP  # noqa: E402


def test_smollm2_converts_once_and_matches_gguf_logits(smollm2, monkeypatch):
    (gguf_model, gguf_tok), folder, root = smollm2
    assert (folder / "source.sha256").read_text().strip() == students.GGUF_SHA256
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, enc_dec = students.load_student(students.DEFAULT_STUDENT, str(root))
    assert not enc_dec and Path(students.resolve_student(students.DEFAULT_STUDENT, str(root))) == folder
    prompt = "Question: Tom has 3 apples and buys 4 more. How many apples?\nAnswer:"
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    assert ids.tolist() == gguf_tok(prompt, return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        a, b = model(ids).logits, gguf_model(ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    mtime = (folder / "model.safetensors").stat().st_mtime
    students.convert_gguf(str(root))  # second call reuses the folder
    assert (folder / "model.safetensors").stat().st_mtime == mtime


def test_special_tokens_are_added_and_embeddings_resized():
    tok = F.tokenizer()
    model = F.causal(len(tok))
    students.add_special_tokens(model, tok)
    assert tok.convert_tokens_to_ids(SEP) != tok.unk_token_id and tok.convert_tokens_to_ids(SEM) != tok.unk_token_id
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert tok(f"a{SEM}", add_special_tokens=False)["input_ids"][-1] == tok.convert_tokens_to_ids(SEM)


def test_head_round_trips_through_a_checkpoint_folder(tmp_path):
    head = students.make_head(64, 8)
    students.save_head(head, tmp_path)
    again = students.load_head(tmp_path)
    x = torch.randn(3, 64)
    assert torch.equal(head(x), again(x))
    assert students.load_head(tmp_path / "nothing") is None


def test_converted_smollm2_is_a_plain_dense_model_that_saves(smollm2, tmp_path):
    """The crash of the first real run: GGUF quantization metadata made every save_pretrained refuse."""
    _, folder, _ = smollm2
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    model, tok, _ = students.load_student(str(folder))
    students.add_special_tokens(model, tok)
    model.save_pretrained(tmp_path / "saved")  # raised "The model is quantized with gguf and is not serializable"
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_a_folder_converted_by_an_older_pst_is_repaired_on_first_use(smollm2, tmp_path):
    _, folder, _ = smollm2
    old = tmp_path / "models" / students.CONVERTED_DIR
    shutil.copytree(folder, old)
    config = json.loads((old / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gguf", "gguf_file": students.GGUF_NAME, "dequantize": False}
    (old / "config.json").write_text(json.dumps(config))
    weights = (old / "model.safetensors").stat().st_mtime_ns
    assert students.convert_gguf(str(tmp_path)) == old  # no GGUF read, no reconversion: just the metadata dropped
    assert "quantization_config" not in json.loads((old / "config.json").read_text())
    assert (old / "model.safetensors").stat().st_mtime_ns == weights
    model, _, _ = students.load_student(str(old))
    model.save_pretrained(tmp_path / "saved")


def test_new_token_inits(tmp_path):
    """mean leaves transformers' rows; eos copies EOS's row; text averages the rows of the token's meaning."""
    for init in ("mean", "eos", "text"):
        tok = F.tokenizer()
        model = F.causal(len(tok))
        ids = students.add_special_tokens(model, tok, init)
        emb = model.get_input_embeddings().weight
        eos = emb[tok.eos_token_id]
        if init == "eos":
            assert all(torch.equal(emb[i], eos) for i in ids)
        elif init == "text":
            words = tok(students.TOKEN_MEANINGS[SEP], add_special_tokens=False)["input_ids"]
            assert torch.allclose(emb[tok.convert_tokens_to_ids(SEP)], emb[words].mean(0))
        else:
            assert not any(torch.equal(emb[i], eos) for i in ids)
        assert students.add_special_tokens(model, tok, init) == []  # a second call (resume, eval) changes nothing
