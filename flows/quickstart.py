"""`pst quickstart`: the whole pipeline offline on the embedded defaults, in minutes on a CPU.

Teacher: with the datasets folder present, the replay server answers from the recorded
text-davinci-002 rationales (teacher `replay-davinci`); without it, the tasks are generated and
the rule-based `local-rules` teacher (not an LLM, see flows.local_teacher) answers. Either way
the teacher runs on localhost over real HTTP for the duration of the run. Student: the real
SmolLM2-135M-Instruct (configs/quickstart.yaml), scored before and after distillation; with
`--tiny` (configs/quickstart-tiny.yaml) a few-layer random-init Llama with SmolLM2's tokenizer,
built once under `<store>/models/`, for a 3-minute smoke of all five strategies.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pst_core import settings, staging
from pst_core.errors import ConfigError

DEFAULT_CONFIG = "configs/quickstart.yaml"
TINY_CONFIG = str(settings.REPO_ROOT / "configs" / "quickstart-tiny.yaml")
KEY_ENV = "PST_LOCAL_TEACHER_KEY"  # local servers ignore keys; the client still sends one
RECORDED_NAME, RECORDED_MODEL = "replay-davinci", "text-davinci-002 (recorded, replayed locally)"


def config_path(path: str | None) -> str:
    """The quickstart config: the given path, else configs/quickstart.yaml of this checkout."""
    candidate = Path(path or settings.REPO_ROOT / DEFAULT_CONFIG)
    if not candidate.is_file():
        raise ConfigError(f"quickstart config {candidate} does not exist; pass --config FILE")
    return str(candidate)


def tiny_student(root: str, layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2, seed: int = 0) -> str:
    """A random-init Llama with SmolLM2's tokenizer under `<root>/models/`, built once; returns its folder."""
    dest = staging.stage_root(root) / "models" / f"tiny-llama-smollm2-L{layers}-H{hidden}-s{seed}"  # local also for s3://
    if (dest / "config.json").is_file():
        return str(dest)
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pst_core.train.students import GGUF_NAME, gguf_source

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_source().parent), gguf_file=GGUF_NAME)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
    LlamaForCausalLM(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)  # complete folders only, as for every store write
    return str(dest)


@contextmanager
def teacher(root: str, tasks: list[str], recorded: bool):
    """Start the local teacher and register it (without a Prefect event); yields its name."""
    from flows import events, local_teacher
    from pst_core import teachers
    from pst_core.replay import records, server

    os.environ.setdefault(KEY_ENV, "local-no-secret")
    if recorded:
        name, model = RECORDED_NAME, RECORDED_MODEL
        ctx = server.running(records.load(str(settings.datasets_dir()), tasks=tasks))
    else:
        name, model = local_teacher.NAME, local_teacher.MODEL
        ctx = local_teacher.serving(root, tasks, staging.stage_root(root) / "_teachers" / "local-rules.jsonl")
    with ctx as handle, events.suppressed():
        teachers.add(root, teachers.TeacherConfig(name=name, base_url=handle.url, model=model, api_key_env=KEY_ENV), replace=True)
        yield name


def quiet_libraries() -> None:
    """Keep the quickstart's output to Prefect's stage lines: no per-model loading bars."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # accelerate warns on every save that the tied lm_head is stored once, which is intended.
    logging.getLogger("accelerate").setLevel(logging.ERROR)


def run(config: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Prepare, start the teacher, run distill_pipeline for it; returns the pipeline's result."""
    from flows.config import load
    from flows.pipeline import distill_pipeline, prepare_flow

    path, root = config_path(config), root or settings.data_root()
    cfg = load(path)
    quiet_libraries()
    datasets = settings.datasets_dir()
    recorded = datasets is not None and datasets.is_dir() and cfg["prepare"].get("source", "local") == "local"
    overrides = {"prepare": {} if recorded else {"source": "generated"}}
    student = cfg["train"].get("student")
    tiny = not student or student == "tiny"
    if tiny:  # build the CPU student once
        overrides["train"] = {"student": tiny_student(root, **(cfg.get("quickstart_student") or {}))}
    tasks = cfg.get("tasks")
    prepare_flow(tasks=tasks, config=path, overrides=overrides, root=root)  # the teacher needs the questions
    with teacher(root, tasks, recorded) as name:
        result = distill_pipeline(teachers=[name], tasks=tasks, config=path, overrides=overrides, root=root)
    return {**result, "teacher": name, "recorded": recorded, "root": root, "config": path, "tiny": tiny}


def where_to_look(result: dict[str, Any]) -> list[str]:
    """The closing lines: store paths, the report, and the UI."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    root = result["root"]
    report = result.get("report") or {}
    api = PREFECT_API_URL.value()
    if api:
        ui = [f"UI:      {api.removesuffix('/api')}  -> flow run 'distill-pipeline' -> Artifacts (Parquet previews, metrics)"]
    else:  # the runs went to a temporary server whose database stays under PREFECT_HOME
        ui = [
            "UI:      `prefect server start`, then http://127.0.0.1:4200  -> flow run 'distill-pipeline' -> Artifacts",
            f"         (Parquet previews, metrics; the runs are in the Prefect database under {PREFECT_HOME.value()})",
        ]
    lines = [
        f"teacher: {result['teacher']} ({'recorded text-davinci-002 outputs' if result['recorded'] else 'rule-based local teacher, not an LLM'})",
        f"store:   {root}/examples  {root}/rationales  {root}/embeddings  {root}/runs",
        f"inspect: pst inspect {root}/rationales",
        f"report:  {report.get('markdown') or report.get('outputs', ['?'])[0]}",
        *ui,
    ]
    if report.get("table"):
        if result.get("tiny"):
            note = ("Tiny random-init student trained for a few steps on CPU: the numbers show every stage ran, "
                    "not what PST can do (configs/quickstart.yaml distils the real student).")
        else:
            note = ("SmolLM2-135M-Instruct before ('untrained') and after distillation, at a CPU budget of 12 steps: it learns "
                    "the formats, not coin_flip; compare accuracy with majority_accuracy (README: The quickstart). "
                    "configs/paper.yaml runs the real experiment.")
        lines += ["", report["table"], "", note]
    return lines
