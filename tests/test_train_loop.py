"""The training loop: resume after a kill, run layout, store assembly, `pst train`, no encoder in training."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core import examples, schemas, store  # noqa: E402
from pst_core.train import checkpoint, config, data, loop  # noqa: E402
from pst_core.train.strategies import get_strategy  # noqa: E402


from test_train_fixtures import Killed, single_thread  # noqa: E402, F401  (single_thread: autouse, one CPU thread)


def _fit(run_dir: Path, on_step=None):
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 3e-3, "max_steps": 24, "batch_size": 4,
                          "eval_every": 8, "save_every": 4, "log_every": 1, "progress": False, "seed": 3})
    rows = F.rows(16)
    train = data.TrainData(rows, F.targets(16))
    return loop.fit(cfg, get_strategy("pst", cfg), F.causal(len(tok) + 2, seed=3), tok, False, train, train, str(run_dir), on_step=on_step)


def test_killed_run_resumes_to_the_same_final_loss(tmp_path):
    straight = _fit(tmp_path / "straight")

    def kill(step: int) -> None:
        if step == 14:  # last/ was saved at step 12: steps 13-14 are lost, as in a real kill
            raise Killed

    with pytest.raises(Killed):
        _fit(tmp_path / "resumed", on_step=kill)
    assert json.loads((tmp_path / "resumed" / "last" / "trainer_state.json").read_text())["step"] == 12
    resumed = _fit(tmp_path / "resumed")
    assert resumed["steps"] == straight["steps"] == 24
    assert abs(resumed["final"]["loss"] - straight["final"]["loss"]) <= 0.01 * straight["final"]["loss"]
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "resumed" / "history.jsonl").read_text().splitlines()
             if "validation" not in ln]
    assert steps == list(range(1, 25))  # lines after the checkpoint were dropped, none duplicated


def test_run_layout_and_load_run(tmp_path):
    metrics = _fit(tmp_path / "run")
    run = tmp_path / "run"
    assert {"checkpoint", "history.jsonl", "train_metrics.json"} <= {p.name for p in run.iterdir()}
    assert not (run / "last").exists()  # a finished run drops its resumable state (TrainConfig.keep_last keeps it)
    history = [json.loads(ln) for ln in (run / "history.jsonl").read_text().splitlines()]
    assert {"step", "lr", "loss", "ntp_answer", "ntp_rationale", "sem", "tokens_per_s"} <= set(history[0])
    assert any(h.get("validation") and "val_sem" in h for h in history)
    assert metrics["best_step"] in (8, 16, 24) and np.isfinite(metrics["final"]["loss"])
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(config.resolve({"strategy": "pst", "task": "toy", "teacher": "t"})))
    loaded = checkpoint.load_run(str(run))
    assert loaded.head is not None and not loaded.model.training and loaded.strategy.name == "pst"
    assert loaded.strategy.stop_strings()[0] == "<|sem|>"
    # a crash between replace_dir's two renames leaves only .old-checkpoint-*: loading puts it back
    (run / "checkpoint").rename(run / ".old-checkpoint-crashed")
    assert checkpoint.load_run(str(run)).head is not None and (run / "checkpoint" / "config.json").is_file()


def _tiny_store(root: str, student_dir: Path) -> None:
    """Examples, rationales (one wrong, one errored) and embeddings for a toy task, plus a tiny student folder."""
    from pst_core.embed import encoder as enc
    from pst_core.embed import vectors

    rows = F.rows(16)
    for split, chunk in (("train", rows[:12]), ("validation", rows[12:])):
        examples.write_split(root, "toy", split, [examples.Example(r.example_id, "toy", split, r.question, r.answer, "number")
                                                   for r in chunk])
        table = pa.Table.from_pylist([{"request_key": f"{split}{i}", "example_id": r.example_id, "sample_index": 0,
                                       "rationale": r.rationale, "is_correct": i != 0, "error": "timeout" if i == 1 else None}
                                      for i, r in enumerate(chunk)])
        store.write_part(store.partition_path(root, "rationales", teacher="fake", task="toy", split=split), table, schemas.RATIONALES)
    texts = [r.rationale for r in rows]
    ref = enc.resolve(config.PSTConfig().encoder)
    vecs = F.targets(len(texts))
    vectors.write(root, ref, vectors.to_table([vectors.text_hash(t) for t in texts], vecs, ref, "test", "float32"))
    tok = F.tokenizer()
    F.causal(len(tok)).save_pretrained(student_dir)
    tok.save_pretrained(student_dir)


def test_pst_train_cli_writes_run_without_running_the_encoder(store_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pst_core import embed
    from pst_core.cli import app

    _tiny_store(store_root, tmp_path / "student")

    def no_encoder(*args, **kwargs):
        raise AssertionError("training must not run the sentence encoder")

    monkeypatch.setattr(embed.encoder, "load_encoder", no_encoder)
    monkeypatch.setattr(embed, "load_encoder", no_encoder)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # any import of it now fails
    cfg_file = tmp_path / "train.json"
    cfg_file.write_text(json.dumps({"lr": 3e-3, "batch_size": 4, "eval_every": 5, "progress": False}))
    args = ["train", "--strategy", "pst", "--teacher", "fake", "--task", "toy", "--student", str(tmp_path / "student"),
            "--config", str(cfg_file), "--max-steps", "10", "--run-id", "r1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    run = Path(store_root) / "runs" / "r1"
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["strategy"], cfg["teacher"], cfg["task"], cfg["max_steps"]) == ("pst", "fake", "toy", 10)
    metrics = json.loads((run / "train_metrics.json").read_text())
    assert metrics["train_rows"] == 10  # 12 minus the wrong and the errored rationale
    assert metrics["best"]["val_loss"] > 0 and (run / "checkpoint" / "sem_head.safetensors").is_file()
    again = CliRunner().invoke(app, args)  # finished run: returns its metrics, trains nothing
    assert again.exit_code == 0 and "10 steps" in again.output
    # a run written before options such as lora_r existed (absent from its config.json) is the same run
    old = {k: v for k, v in cfg.items() if not k.startswith(("lora_", "report_to", "tracker_", "gradient_"))}
    (run / "config.json").write_text(json.dumps(old))
    older = CliRunner().invoke(app, args)
    assert older.exit_code == 0 and "10 steps" in older.output, older.output


def test_assembly_caps_rationales_per_question_and_keeps_wrong_ones_when_asked(store_root, tmp_path):
    _tiny_store(store_root, tmp_path / "student")
    table = pa.Table.from_pylist([{"request_key": "extra", "example_id": "toy-00002", "sample_index": 1,
                                   "rationale": "another", "is_correct": True}])
    store.write_part(store.partition_path(store_root, "rationales", teacher="fake", task="toy", split="train"), table, schemas.RATIONALES)
    base = {"strategy": "pre_thinking", "task": "toy", "teacher": "fake"}
    strat = get_strategy("pre_thinking")
    assert len(data.assemble(store_root, config.resolve(base), strat, "train").rows) == 11
    assert len(data.assemble(store_root, config.resolve({**base, "max_rationales_per_example": 1}), strat, "train").rows) == 10
    assert len(data.assemble(store_root, config.resolve({**base, "correct_only": False}), strat, "train").rows) == 12
    shuffled = data.assemble(store_root, config.resolve({**base, "perturb": "shuffle", "perturb_rate": 0.5}), strat, "train")
    assert shuffled.notes["perturbed"]["changed"] >= 1


def test_examples_with_the_same_question_share_its_stored_rationales(store_root):
    # The store keeps one row per request key and identical questions make the same request, so
    # the row names only one of them; its twins must train on it too (re-scored when gold differs).
    rows = F.rows(3)
    exs = [examples.Example(r.example_id, "toy", "train", r.question, r.answer, "number") for r in rows]
    exs.append(examples.Example("toy-00100", "toy", "train", rows[0].question + " ", rows[0].answer, "number"))
    exs.append(examples.Example("toy-00101", "toy", "train", rows[0].question, "99", "number"))  # noisy twin
    examples.write_split(store_root, "toy", "train", exs)
    table = pa.Table.from_pylist([{"request_key": f"k{i}", "example_id": r.example_id, "sample_index": 0, "rationale": r.rationale,
                                   "predicted_answer": r.answer, "is_correct": True} for i, r in enumerate(rows)])
    store.write_part(store.partition_path(store_root, "rationales", teacher="fake", task="toy", split="train"), table, schemas.RATIONALES)
    base = {"strategy": "pre_thinking", "task": "toy", "teacher": "fake"}
    strat = get_strategy("pre_thinking")
    got = data.assemble(store_root, config.resolve(base), strat, "train").rows
    assert sorted(r.example_id for r in got) == ["toy-00000", "toy-00001", "toy-00002", "toy-00100"]
    twin = next(r for r in got if r.example_id == "toy-00100")
    assert (twin.rationale, twin.request_key) == (rows[0].rationale, "k0")
    everything = data.assemble(store_root, config.resolve({**base, "correct_only": False}), strat, "train").rows
    assert len(everything) == 5 and {r.example_id for r in everything} >= {"toy-00101"}


def test_selection_by_exact_match_scores_validation_with_the_evaluation_engine(tmp_path, monkeypatch):
    from pst_core.evaluate import generate as engine

    calls = []
    real = engine.generate
    monkeypatch.setattr(engine, "generate", lambda *a, **k: calls.append(k["stop_strings"]) or real(*a, **k))
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": "post_thinking", "task": "toy", "teacher": "t", "lr": 3e-3, "max_steps": 4, "batch_size": 4,
                          "eval_every": 2, "select_by": "exact_match", "eval_max_new_tokens": 4, "progress": False})
    rows = F.rows(8)
    metrics = loop.fit(cfg, get_strategy("post_thinking", cfg), F.causal(len(tok) + 2), tok, False, data.TrainData(rows),
                       data.TrainData(rows[:4]), str(tmp_path / "run"), val_questions=rows[:4])
    assert len(calls) == 2 and calls[0][0] == "<|sem|>"  # one engine, the strategy's own stop rule
    assert "val_exact_match" in metrics["best"] and metrics["best_step"] in (2, 4)


def test_shuffle_never_gives_a_question_its_twins_rationale(store_root):
    rows = F.rows(2)
    exs = [examples.Example(r.example_id, "toy", "train", r.question, r.answer, "number") for r in rows]
    exs += [examples.Example(f"toy-{100 + i:05d}", "toy", "train", rows[0].question, rows[0].answer, "number") for i in range(3)]
    examples.write_split(store_root, "toy", "train", exs)
    table = pa.Table.from_pylist([{"request_key": f"k{i}", "example_id": r.example_id, "sample_index": 0, "rationale": r.rationale,
                                   "predicted_answer": r.answer, "is_correct": True} for i, r in enumerate(rows)])
    store.write_part(store.partition_path(store_root, "rationales", teacher="fake", task="toy", split="train"), table, schemas.RATIONALES)
    cfg = config.resolve({"strategy": "pre_thinking", "task": "toy", "teacher": "fake", "perturb": "shuffle", "perturb_rate": 1.0})
    got = data.assemble(store_root, cfg, get_strategy("pre_thinking"), "train")
    # every row is perturbed, and a donor is always another question, so every text changes
    assert len(got.rows) == 5 and got.notes["perturbed"]["changed"] == 5
    assert all(r.rationale != rows[0].rationale for r in got.rows if r.question == rows[0].question)


# Per-step training losses of default (full fine-tune) fits, recorded with the loop as it was before
# LoRA, gradient checkpointing and trackers were added: published paper runs are reused by config,
# so the default path must keep training to the same numbers.
PINNED_LOSSES = {
    "pst-llama": [7.188405990600586, 6.641475200653076, 6.0344319343566895, 5.898969650268555],
    "pst-t5": [9.406414985656738, 6.553124904632568, 5.565479278564453, 5.095977306365967],
    "prefix-llama": [4.172141075134277, 3.734339952468872, 3.4171178340911865, 3.3664321899414062],
}


@pytest.mark.parametrize("case", sorted(PINNED_LOSSES))
def test_default_full_fine_tune_trains_to_the_pinned_losses(case, tmp_path):
    strategy, arch = case.split("-")
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": strategy, "task": "toy", "teacher": "t", "lr": 3e-3, "max_steps": 4, "batch_size": 4,
                          "eval_every": 0, "log_every": 1, "progress": False, "seed": 3})
    assert cfg.lora_r == 0 and not cfg.gradient_checkpointing and cfg.report_to == ()  # the defaults are off
    enc_dec = arch == "t5"
    model = F.seq2seq(len(tok) + 2, tok.pad_token_id, tok.eos_token_id, seed=3) if enc_dec else F.causal(len(tok) + 2, seed=3)
    loop.fit(cfg, get_strategy(strategy, cfg), model, tok, enc_dec, data.TrainData(F.rows(8), F.targets(8)), None, str(tmp_path))
    history = [json.loads(ln) for ln in (tmp_path / "history.jsonl").read_text().splitlines()]
    # rel 1e-5: float noise of another CPU's kernels passes, any change of what trains does not
    assert [h["loss"] for h in history if "loss" in h] == pytest.approx(PINNED_LOSSES[case], rel=1e-5)
    assert not (tmp_path / "tb").exists() and not (tmp_path / "trackers.json").exists()
