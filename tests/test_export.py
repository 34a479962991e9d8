"""`pst export`: a folder that plain transformers loads (no pst import) and that stops at the answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F

from pst_core import examples
from pst_core.errors import ConfigError, DataError
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.runner import evaluate_run
from pst_core.export import export_run, prompt_template, push
from pst_core.train import checkpoint, config, data, loop, students
from pst_core.train.strategies import SEM, SEP, get_strategy

ALL = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]

# Run in a child process that never imports pst: what a user of the exported folder runs.
PLAIN = r'''
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
out, questions = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(out)
model = AutoModelForCausalLM.from_pretrained(out)
pipe = pipeline("text-generation", model=model, tokenizer=tok)
res = {"generated": [], "new_tokens": [], "full": [], "pipeline": [], "chat": [], "continued": []}
for q in questions:
    enc = tok("Question: " + q + "\nAnswer:", return_tensors="pt")
    n = enc["input_ids"].shape[1]
    ids = model.generate(**enc)[0, n:]  # generation_config.json alone decides where to stop
    res["generated"].append(tok.decode(ids, skip_special_tokens=False))
    res["new_tokens"].append(len(ids))
    full = model.generate(**enc, eos_token_id=tok.eos_token_id)[0, n:]  # the rationale on demand: past SEM
    res["full"].append(tok.decode(full, skip_special_tokens=False))
    res["pipeline"].append(pipe("Question: " + q + "\nAnswer:", return_full_text=False)[0]["generated_text"])
    chat = [{"role": "user", "content": q}]
    reply = pipe(chat)[0]["generated_text"][-1]["content"]
    res["chat"].append(reply)
    more = chat + [{"role": "assistant", "content": reply + "<|sem|>"}]
    res["continued"].append(pipe(more, skip_special_tokens=False)[0]["generated_text"][-1]["content"])
res["pst_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("pst_core", "flows", "tasks"))
print(json.dumps(res))
'''


def _config(strategy: str, student: str, **extra):
    return config.resolve({"strategy": strategy, "task": "toy", "teacher": "fake", "student": student, "lr": 5e-3, "max_steps": 100,
                           "batch_size": 16, "eval_every": 0, "progress": False, "warmup_ratio": 0.1, "seed": 0,
                           "new_token_init": "mean", **extra})


def untrained_run(root: Path, strategy: str, tok=None, **extra) -> Path:
    """A run folder (config.json + checkpoint/) of an untrained tiny student: enough for what export writes."""
    tok = tok or F.tokenizer()
    cfg = _config(strategy, str(root / "student"), **extra)
    model = F.causal(len(tok) + 2)
    students.add_special_tokens(model, tok, "mean")
    run = root / "runs" / f"toy-{strategy}"
    run.mkdir(parents=True)
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    checkpoint.save_best(run, model, tok, None, {"step": 0})
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny PST student trained until it answers every toy question, evaluated by `pst eval` (with rationales)."""
    root = tmp_path_factory.mktemp("export")
    store = root / "data"
    tok, rows = F.tokenizer(), F.rows(16)
    cfg = _config("pst", str(root / "student"))
    run = store / "runs" / "toy-pst-fake-s0"
    with F.one_thread():
        loop.fit(cfg, get_strategy("pst", cfg), F.causal(len(tok) + 2), tok, False, data.TrainData(rows, F.targets(16)), None, str(run))
        checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
        examples.write_split(str(store), "toy", "test", [examples.Example(r.example_id, "toy", "test", r.question, r.answer, "number")
                                                        for r in rows[:4]])
        metrics = evaluate_run(run, EvalConfig(max_new_tokens=40, bootstrap_samples=100, with_rationale=True, device="cpu"), root=str(store))
    return {"run": run, "store": store, "rows": rows[:4], "metrics": metrics}


@pytest.mark.slow
def test_exported_pst_student_stops_at_sem_in_plain_transformers(trained, tmp_path):
    out = tmp_path / "student"
    result = export_run(trained["run"], out)
    pred = pq.read_table(trained["run"] / "predictions.parquet").to_pydict()
    assert trained["metrics"]["accuracy"] == 1.0  # the student answers; now served without pst
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, "-c", PLAIN, str(out), json.dumps([r.question for r in trained["rows"]])],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["pst_modules"] == []
    # Plain generate() with the folder's generation config writes exactly what `pst eval` wrote: the answer and SEM, nothing after.
    assert res["generated"] == pred["generated"]
    assert res["new_tokens"] == pred["new_tokens"]
    assert all(g.endswith(SEM) for g in res["generated"])
    assert [p.strip() for p in res["pipeline"]] == [r.answer for r in trained["rows"]]  # SEM is a special token: skipped
    assert [c.strip() for c in res["chat"]] == [r.answer for r in trained["rows"]]  # the chat template renders the trained prompt
    # The rationale on demand: generating past SEM gives `pst eval --with-rationale`'s rationale, and so does continuing the answer.
    eos = F.tokenizer().eos_token
    assert [f.removesuffix(eos).split(SEM, 1)[1].strip() for f in res["full"]] == pred["rationale"]
    assert [c.removesuffix(eos).split(SEM, 1)[1].strip() for c in res["continued"]] == pred["rationale"]
    assert result.kind == "full" and result.stop_tokens == [eos, SEM]


@pytest.mark.slow
def test_model_card_states_task_teacher_strategy_metrics_and_rule(trained, tmp_path):
    out = export_run(trained["run"], tmp_path / "student").out
    card = (out / "README.md").read_text()
    for fact in ("`toy`", "`fake`", "`pst`", "accuracy | 100.0 %", "stops there", "llama-cli", "SamplingParams(", "stop_token_ids=[",
                 "The rationale, on demand", "Question: {question}\nAnswer:"):
        assert fact in card, fact
    settings = json.loads((out / "generation_config.json").read_text())
    assert settings["max_new_tokens"] == 40  # the budget the run was evaluated with
    assert settings["do_sample"] is False


@pytest.mark.parametrize("name", ALL)
def test_generation_config_stops_answer_first_students_at_sem_and_others_at_eos(name, tmp_path):
    tok = F.tokenizer()
    run = untrained_run(tmp_path, name, tok)
    out = export_run(run, tmp_path / "out").out
    stops = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    eos = tok.eos_token_id
    sem = tok.convert_tokens_to_ids(SEM)
    assert stops == (sorted([eos, sem]) if name in ("post_thinking", "pst") else [eos])
    assert not (out / checkpoint.STATE).exists()
    card = (out / "README.md").read_text()
    assert "Not evaluated yet: `pst eval --run" in card
    assert ("[label] Question: {question}" in card) == (name == "prefix")


def test_exported_tokenizer_keeps_sep_and_sem_as_single_special_tokens(tmp_path):
    from transformers import AutoTokenizer

    out = export_run(untrained_run(tmp_path, "pre_thinking"), tmp_path / "out").out
    tok = AutoTokenizer.from_pretrained(str(out))
    for special in (SEP, SEM):
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
        assert special in tok.all_special_tokens


@pytest.mark.parametrize("name", ["pst", "prefix"])
def test_plain_prompt_chat_template_renders_the_trained_prompt_with_its_bos(name):
    from eval_tiny import char_tokenizer
    from tokenizers import processors

    tok = char_tokenizer()  # adds BOS to every encoded text: the template must write it itself
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    strategy = get_strategy(name).bind(tok)
    tok.chat_template = prompt_template(strategy, tok)
    question = "  Ann has 3 \"apples\"\n and {{ 2 }} more?  "
    rendered = tok.apply_chat_template([{"role": "system", "content": "ignored"}, {"role": "user", "content": question}],
                                       tokenize=False, add_generation_prompt=True)
    want = tok(strategy.inference_prompt(question, []))["input_ids"]
    assert want[0] == tok.bos_token_id
    assert tok(rendered, add_special_tokens=False)["input_ids"] == want
    continued = tok.apply_chat_template([{"role": "user", "content": question}, {"role": "assistant", "content": " 5" + SEM}],
                                        tokenize=False, continue_final_message=True)
    assert continued == rendered + " 5" + SEM


def test_export_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    run = untrained_run(tmp_path, "pst")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty.*--overwrite"):
        export_run(run, out)
    export_run(run, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "generation_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_export_of_a_run_without_checkpoint_is_one_clear_error(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    with pytest.raises(DataError, match="no config.json"):
        export_run(run, tmp_path / "out")
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(_config("pst", "s")))
    with pytest.raises(DataError, match="no checkpoint"):
        export_run(run, tmp_path / "out")


class FakeHub:
    """Records what `push` asks of huggingface_hub's HfApi; uploads copy into a local folder."""

    calls: ClassVar[list] = []

    def __init__(self, *args, **kwargs) -> None:
        self.calls = FakeHub.calls

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], sorted(os.listdir(kwargs["folder_path"]))))


def test_cli_export_pushes_the_folder_to_the_hub_through_huggingface_hub(store_root, tmp_path, monkeypatch):
    import huggingface_hub
    from typer.testing import CliRunner

    from pst_core.cli import app

    run = untrained_run(Path(store_root), "pst")
    FakeHub.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    res = CliRunner().invoke(app, ["export", "--run", run.name, "--out", str(tmp_path / "out"), "--push-to-hub", "me/tiny-pst", "--private"])
    assert res.exit_code == 0, res.output
    eos = F.tokenizer().eos_token_id
    assert f"generation stops at [EOS] ({eos}), <|sem|>" in res.output and "pushed to https://huggingface.co/me/tiny-pst" in res.output
    (create, name, kwargs), (upload, repo, files) = FakeHub.calls
    assert (create, name, kwargs["private"], kwargs["exist_ok"]) == ("create_repo", "me/tiny-pst", True, True)
    assert upload == "upload_folder" and repo == "me/tiny-pst"
    assert {"README.md", "generation_config.json", "model.safetensors", "tokenizer.json", "config.json"} <= set(files)
    assert 'pipeline("text-generation", model="me/tiny-pst")' in (tmp_path / "out" / "README.md").read_text()


def test_push_without_a_token_is_one_line(tmp_path):
    from huggingface_hub.errors import LocalTokenNotFoundError

    class NoToken(FakeHub):
        def create_repo(self, repo_id, **kwargs):
            raise LocalTokenNotFoundError("Token is required")

    with pytest.raises(ConfigError, match="no Hugging Face token; set HF_TOKEN"):
        push(tmp_path, "me/x", api=NoToken())


def test_lora_run_exports_merged_weights_or_the_adapter_with_the_same_stop_rule(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = F.tokenizer()
    student = tmp_path / "student"
    F.causal(len(tok), seed=3).save_pretrained(student)
    tok.save_pretrained(student)
    cfg = _config("post_thinking", str(student), lora_r=4, lora_alpha=8, max_steps=2, batch_size=4, lr=2e-2)
    run = tmp_path / "runs" / "toy-post_thinking-lora"
    run.mkdir(parents=True)
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    with F.one_thread():
        loop.fit(cfg, get_strategy("post_thinking", cfg), F.causal(len(tok), seed=3), tok, False, data.TrainData(F.rows(8)), None, str(run))
    merged = export_run(run, tmp_path / "merged", merge=True)
    alone = export_run(run, tmp_path / "adapter")
    assert (merged.kind, alone.kind) == ("merged", "adapter")
    for result in (merged, alone):
        assert json.loads((result.out / "generation_config.json").read_text())["eos_token_id"] == result.stop_token_ids
        assert result.stop_tokens == [tok.eos_token, SEM]
    assert "LoRA adapter merged" in (merged.out / "README.md").read_text()
    card = (alone.out / "README.md").read_text()
    assert "library_name: peft" in card and f"LoRA adapter alone (load it onto `{student}` with peft)" in card
    assert (alone.out / "adapter_model.safetensors").is_file() and not (alone.out / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(merged.out)
    assert model.generation_config.eos_token_id == merged.stop_token_ids
