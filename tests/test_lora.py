"""LoRA through peft: only adapters, the SEP/SEM rows and the head train; checkpoints hold the adapter,
resume restores it, evaluation loads it merged, and export writes merged weights or the adapter alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.errors import ConfigError  # noqa: E402
from pst_core.train import adapters, checkpoint, config, data, loop, students  # noqa: E402
from pst_core.train.strategies import SEM, SEP, get_strategy  # noqa: E402


from test_train_fixtures import Killed, single_thread  # noqa: E402, F401  (single_thread: autouse, one CPU thread)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    """The tiny Llama saved as a student folder: a LoRA checkpoint is loaded onto its base student."""
    folder = tmp_path_factory.mktemp("student")
    tok = F.tokenizer()
    F.causal(len(tok), seed=3).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def lora_cfg(student: Path, **extra):
    return config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 2e-2, "max_steps": 12, "batch_size": 4,
                           "eval_every": 4, "save_every": 2, "log_every": 1, "progress": False, "seed": 3, "student": str(student),
                           "lora_r": 4, "lora_alpha": 8, **extra})


def fit(cfg, run_dir: Path, model=None, on_step=None):
    """One LoRA fit of the tiny student on 8 rows; config.json is written first, as `pst train` does."""
    tok = F.tokenizer()
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(run_dir / "config.json", checkpoint.config_dict(cfg))
    rows = F.rows(8)
    model = model if model is not None else F.causal(len(tok), seed=3)
    metrics = loop.fit(cfg, get_strategy(cfg.strategy, cfg), model, tok, False, data.TrainData(rows, F.targets(8)),
                       data.TrainData(rows[:4], F.targets(4)), str(run_dir), val_questions=rows[:4], on_step=on_step)
    return metrics, model, tok


def base_name(name: str) -> str:
    """A peft-injected parameter's name in the plain model (`q_proj.base_layer.weight` -> `q_proj.weight`)."""
    return name.replace(".base_layer", "").replace(".token_adapter", "")


def test_lora_trains_only_adapters_new_token_rows_and_head(student_dir, tmp_path, monkeypatch):
    initial_heads = []
    make_head = students.make_head

    def recording_head(*args):
        head = make_head(*args)
        initial_heads.append({k: v.clone() for k, v in head.state_dict().items()})
        return head

    monkeypatch.setattr(students, "make_head", recording_head)
    reference, ref_tok = F.causal(len(F.tokenizer()), seed=3), F.tokenizer()
    students.add_special_tokens(reference, ref_tok, "eos", pad_to_multiple_of=None)
    metrics, model, tok = fit(lora_cfg(student_dir), tmp_path / "run")
    assert metrics["lora"]["trainable_params"] < 0.2 * metrics["lora"]["total_params"]
    ref = dict(reference.named_parameters())
    trained = dict(model.named_parameters())
    frozen = [n for n, p in trained.items() if not p.requires_grad]
    assert frozen and all(torch.equal(trained[n], ref[base_name(n)]) for n in frozen)  # the student itself never moves
    kinds = [[k for k in ("lora_A", "lora_B", "trainable_tokens_delta") if k in n] for n, p in trained.items() if p.requires_grad]
    assert all(len(k) == 1 for k in kinds) and {k[0] for k in kinds} == {"lora_A", "lora_B", "trainable_tokens_delta"}
    assert all(p.abs().sum() > 0 for n, p in trained.items() if "lora_B" in n)  # B starts at 0: every adapter learned
    # the effective embedding (merged checkpoint): only the SEP/SEM rows differ from the student's
    loaded = checkpoint.load_run(str(tmp_path / "run"))
    merged = loaded.model.get_input_embeddings().weight
    changed = (merged != reference.get_input_embeddings().weight).any(-1).nonzero().flatten().tolist()
    assert changed == sorted(tok.convert_tokens_to_ids(t) for t in (SEP, SEM))
    assert all(not torch.equal(v, initial_heads[0][k]) for k, v in loaded.head.state_dict().items())  # the head trained


def test_lora_checkpoint_is_an_adapter_and_loads_merged_as_trained(student_dir, tmp_path):
    metrics, model, tok = fit(lora_cfg(student_dir, max_steps=4, eval_every=4, select_by="exact_match", eval_max_new_tokens=4),
                              tmp_path / "run")
    assert "val_exact_match" in metrics["best"]  # validation generates with the adapters in place
    folder = tmp_path / "run" / "checkpoint"
    assert adapters.is_adapter(folder) and not (folder / "model.safetensors").exists()
    assert (folder / "config.json").is_file() and (folder / "sem_head.safetensors").is_file()
    ids = tok("Question : ann has 3 apples", return_tensors="pt")["input_ids"]
    model.eval()
    loaded = checkpoint.load_run(str(tmp_path / "run"))
    assert not hasattr(loaded.model, "peft_config")  # merged: plain weights for generation
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, model(ids).logits, atol=1e-5)


def test_export_writes_merged_weights_or_the_adapter_alone(student_dir, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    fit(lora_cfg(student_dir, max_steps=4, eval_every=4), tmp_path / "run")
    merged = checkpoint.merge_and_save(tmp_path / "run", tmp_path / "merged", merge=True)
    alone = checkpoint.merge_and_save(tmp_path / "run", tmp_path / "adapter", merge=False)
    assert (merged["kind"], alone["kind"], alone["base"]) == ("merged", "adapter", str(student_dir))
    assert "model.safetensors" in merged["files"] and "adapter_config.json" not in merged["files"]
    assert "adapter_model.safetensors" in alone["files"] and "model.safetensors" not in alone["files"]
    # plain transformers / peft, no pst: both folders give the same logits
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    ids = tok(f"Question : bob has 2 apples {SEM}", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(ids).logits
        b = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "adapter")(ids).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_export_of_a_full_fine_tune_copies_its_weights(tmp_path):
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": "answer_only", "task": "toy", "teacher": "t", "max_steps": 2, "batch_size": 4,
                          "progress": False})
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    loop.fit(cfg, get_strategy("answer_only", cfg), F.causal(len(tok) + 2), tok, False, data.TrainData(F.rows(8)), None, str(run))
    out = checkpoint.merge_and_save(run, tmp_path / "out", merge=False)
    assert out["kind"] == "full" and out["base"] is None and "model.safetensors" in out["files"] and "trainer_state.json" not in out["files"]


def test_killed_lora_run_resumes_to_the_same_final_loss(student_dir, tmp_path):
    cfg = lora_cfg(student_dir)
    straight, _, _ = fit(cfg, tmp_path / "straight")

    def kill(step: int) -> None:
        if step == 7:  # last/ was saved at step 6
            raise Killed

    with pytest.raises(Killed):
        fit(cfg, tmp_path / "resumed", on_step=kill)
    last = tmp_path / "resumed" / "last"
    from safetensors import safe_open

    with safe_open(str(last / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    # only what trains: adapters, the new-token rows and the head, never the frozen student
    assert keys and all(("lora_" in k or "trainable_tokens_delta" in k or k.startswith("head.")) for k in keys), keys
    resumed, _, _ = fit(cfg, tmp_path / "resumed")
    assert resumed["steps"] == straight["steps"] == 12
    assert resumed["final"]["loss"] == pytest.approx(straight["final"]["loss"], rel=1e-4)


def test_lora_on_a_seq2seq_student_trains_and_loads(tmp_path):
    tok = F.tokenizer()
    student = tmp_path / "t5"
    F.seq2seq(len(tok), tok.pad_token_id, tok.eos_token_id, seed=3).save_pretrained(student)
    tok.save_pretrained(student)
    cfg = lora_cfg(student, max_steps=4, eval_every=4, save_every=0)
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    rows = F.rows(8)
    model = F.seq2seq(len(tok), tok.pad_token_id, tok.eos_token_id, seed=3)
    metrics = loop.fit(cfg, get_strategy("pst", cfg), model, tok, True, data.TrainData(rows, F.targets(8)),
                       data.TrainData(rows[:4], F.targets(4)), str(run))
    assert metrics["lora"]["target_modules"] == adapters.DEFAULT_TARGETS["t5"] and metrics["final"]["loss"] > 0
    loaded = checkpoint.load_run(str(run))
    assert loaded.is_encoder_decoder and loaded.head is not None
    b = tok("Question : ann has 3 apples", return_tensors="pt")
    model.eval()
    with torch.no_grad():
        kw = {"input_ids": b["input_ids"], "decoder_input_ids": b["input_ids"][:, :3]}
        assert torch.allclose(loaded.model(**kw).logits, model(**kw).logits, atol=1e-5)


def test_untied_output_embeddings_train_the_new_rows_on_both_tables():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = F.tokenizer()
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    students.add_special_tokens(model, tok, pad_to_multiple_of=None)
    ids = adapters.new_token_ids(tok)
    assert adapters.token_layers(model, ids) == {"embed_tokens": ids, "lm_head": ids}
    assert adapters.token_layers(F.causal(len(tok) + 2), ids) == ids  # tied: the output follows the input rows


def test_lora_options_are_checked():
    with pytest.raises(ConfigError, match="need lora_r > 0"):
        config.resolve({"strategy": "pst", "lora_target_modules": ["q_proj"]})
    with pytest.raises(ConfigError, match="lora_r >= 0"):
        config.resolve({"strategy": "pst", "lora_r": -1})
    cfg = config.resolve({"strategy": "pst", "lora_r": 8, "lora_target_modules": ["q_proj", "v_proj"]})
    assert cfg.lora_target_modules == ("q_proj", "v_proj") and hash(cfg)  # JSON lists become tuples
    tok = F.tokenizer()
    model = F.causal(len(tok) + 2)
    students.add_special_tokens(model, tok)
    with pytest.raises(ConfigError, match="lora_target_modules"):
        adapters.apply_lora(config.resolve({"strategy": "pst", "lora_r": 4, "lora_target_modules": ["nope"]}), model, tok, False)
    with pytest.raises(ConfigError, match="lora_modules_to_save: lm_head are the embeddings"):
        adapters.apply_lora(config.resolve({"strategy": "pst", "lora_r": 4, "lora_modules_to_save": ["lm_head"]}), model, tok, False)
    with_norm = adapters.apply_lora(config.resolve({"strategy": "pst", "lora_r": 4, "lora_modules_to_save": ["norm"]}), model, tok, False)
    assert any("modules_to_save" in n and p.requires_grad for n, p in with_norm.named_parameters())


def test_a_stored_config_without_options_added_since_is_the_same_config():
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t"})
    stored = json.loads(json.dumps(checkpoint.config_dict(cfg)))
    old = {k: v for k, v in stored.items() if not k.startswith(("lora_", "report_to", "tracker_", "gradient_"))}
    assert checkpoint.same_config(old, cfg)
    assert not checkpoint.same_config(old, config.replace(cfg, lora_r=8))  # a new option set differently is another run
    assert not checkpoint.same_config({**old, "lr": 1.0}, cfg)


def test_pst_train_with_lora_and_tensorboard_from_the_command_line(store_root, tmp_path):
    from typer.testing import CliRunner

    from pst_core.cli import app
    from test_train_loop import _tiny_store

    _tiny_store(store_root, tmp_path / "student")
    args = ["train", "--strategy", "post_thinking", "--teacher", "fake", "--task", "toy", "--student", str(tmp_path / "student"),
            "--max-steps", "3", "--run-id", "r1", "--lora-r", "4", "--report-to", "tensorboard", "--gradient-checkpointing"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = Path(store_root) / "runs" / "r1"
    stored = json.loads((run / "config.json").read_text())
    assert (stored["lora_r"], stored["report_to"], stored["gradient_checkpointing"]) == (4, ["tensorboard"], True)
    assert adapters.is_adapter(run / "checkpoint") and list((run / "tb").glob("events.out.tfevents.*"))
    loaded = checkpoint.load_run(str(run), root=store_root)  # as `pst eval` loads it: the adapter merged onto the student
    assert loaded.strategy.name == "post_thinking" and not hasattr(loaded.model, "peft_config")
