"""The README.md model card of an exported run: what it was trained on, how well it did, how to run it.

The inference rule is the part a user cannot guess: which prompt the student expects, where it
stops and where the answer is in its output. The card states it with the folder's own token ids
and prompt, and gives the same call for transformers, vLLM and llama.cpp, plus the rationale on
demand (an answer-first student's rationale is the continuation past `<|sem|>`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pst_core.train.strategies import SEM, SEP

RULES = {
    "answer_only": "It writes the answer and stops at EOS; the whole output is the answer.",
    "pre_thinking": (f"It writes a rationale, `{SEP}`, then the answer, and stops at EOS (Fine-tune-CoT); the answer is the "
                     f"text after the last `{SEP}` (no `{SEP}`: the budget ran out, no answer). Decode with special tokens "
                     f"kept to see `{SEP}`."),
    "prefix": ("Distilling Step-by-Step: the prompt starts with `[label] ` and the student writes the answer, then EOS; "
               "the whole output is the answer (`[rationale] ` instead asks for a rationale)."),
    "post_thinking": (f"Answer first: it writes the answer, then `{SEM}`, and generation stops there (the rationale it "
                      f"learnt to write after `{SEM}` is never generated unless asked for); the answer is the text before "
                      f"`{SEM}`."),
}
RULES["pst"] = RULES["post_thinking"]
SUMMARY = {
    "answer_only": "plain fine-tuning on the gold answers",
    "pre_thinking": "Fine-tune-CoT (rationale, then answer)",
    "prefix": "Distilling Step-by-Step (label and rationale views)",
    "post_thinking": "Post-Thinking (answer, then rationale)",
    "pst": "Post-Semantic-Thinking (answer, then rationale, plus a semantic loss on the SEM state)",
}


@dataclass(frozen=True)
class CardFacts:
    """Everything the card states, gathered by `export_run`."""

    run_id: str
    config: dict[str, Any]
    strategy: Any
    kind: str
    stop_token_ids: list[int]
    stop_tokens: list[str]
    max_new_tokens: int
    metrics: dict[str, Any] | None
    train_metrics: dict[str, Any] | None
    encoder_decoder: bool
    where: str  # the folder or Hub repository the examples load from


def _hub_id(name: str | None) -> bool:
    """Whether `name` looks like a Hub model id (`org/name`), not a local path."""
    return bool(name) and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", str(name)) is not None


def _front_matter(f: CardFacts) -> str:
    cfg = f.config
    lines = ["---", f"library_name: {'peft' if f.kind == 'adapter' else 'transformers'}",
             f"pipeline_tag: {'text2text-generation' if f.encoder_decoder else 'text-generation'}"]
    if _hub_id(cfg.get("student")):
        lines.append(f"base_model: {cfg['student']}")
    tags = dict.fromkeys(["pst", "distillation", "reasoning", f.strategy.name])  # ordered, no repeat for the pst strategy
    lines += ["tags:", *(f"- {t}" for t in tags), "---"]
    return "\n".join(lines)


def _results(f: CardFacts) -> str:
    m = f.metrics
    if not m:
        return f"Not evaluated yet: `pst eval --run {f.run_id}` writes the test metrics, and a new export puts them here."
    interval = f"[{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] ({100 * m.get('confidence', 0.95):.0f} % bootstrap interval)"
    rows = [("accuracy", f"{100 * m['accuracy']:.1f} % {interval}"),
            ("questions", f"{m['n']} ({m.get('split', 'test')} split)"),
            ("majority-answer floor", f"{100 * m['majority_accuracy']:.1f} %" if "majority_accuracy" in m else "–"),
            ("new tokens per answer", f"{m['mean_new_tokens']:.1f}"),
            ("latency per question", f"{m['mean_latency_ms']:.1f} ms on {m.get('device', '?')}"),
            ("stopped before the budget", f"{100 * m['stopped_fraction']:.1f} %" if "stopped_fraction" in m else "–")]
    return "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


EXAMPLE = "What is 12 + 30?"


def _transformers(f: CardFacts) -> list[str]:
    s, task = f.strategy, ("text2text-generation" if f.encoder_decoder else "text-generation")
    keep = ", skip_special_tokens=False" if s.name == "pre_thinking" else ""  # SEP must stay in the text to be found
    plain = json.dumps(s.prompt_text(EXAMPLE, []))
    template = ("the student's own: it was trained through it" if s.chat
                else "written by pst: it renders the question into the plain prompt the student was trained on")
    stops = ", ".join(f"`{t}`" for t in f.stop_tokens)
    lines = ["### transformers", "",
             (f"`generation_config.json` holds the rule: greedy, `eos_token_id` = {f.stop_token_ids} ({stops}), "
              f"at most {f.max_new_tokens} new tokens. A chat message goes through the tokenizer's chat template ({template})."),
             "", "```python", "from transformers import pipeline", "", f'pipe = pipeline("{task}", model="{f.where}")']
    if f.encoder_decoder:
        return [*lines, f'print(pipe({plain})[0]["generated_text"])', "```"]
    note = f"  # the answer: generation stopped at {SEM}" if s.answer_first else ""
    return [*lines, f'chat = [{{"role": "user", "content": "{EXAMPLE}"}}]',
            f'reply = pipe(chat{keep})[0]["generated_text"][-1]["content"]{note}',
            f'text = pipe({plain}, return_full_text=False{keep})[0]["generated_text"]  # the same, from the raw prompt', "```"]


def _vllm(f: CardFacts) -> list[str]:
    keep = ", skip_special_tokens=False" if f.strategy.name == "pre_thinking" else ""
    call = (f'LLM("{f.where}").generate({json.dumps(f.strategy.prompt_text(EXAMPLE, []))}, '
            f"SamplingParams(temperature=0, max_tokens={f.max_new_tokens}, stop_token_ids={f.stop_token_ids}{keep}))")
    return ["### vLLM", "", "vLLM reads `generation_config.json` and stops at the same tokens; the explicit form is one line:", "",
            "```python", call, "```", "",
            f"(`vllm serve {f.where}` serves `/v1/completions` and `/v1/chat/completions` by the same rule.)"]


def _llama_cpp(f: CardFacts, tokenizer: Any) -> list[str]:
    eos, eos_id, sem_id = tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(SEM)
    call = f"llama-cli -m student.gguf -no-cnv --temp 0 -n {f.max_new_tokens} -p {_shell(f.strategy.prompt_text(EXAMPLE, []))}"
    if not f.strategy.answer_first:
        return ["### llama.cpp", "", "Convert with `convert_hf_to_gguf.py`, then:", "", "```bash", call, "```", "",
                f"It stops at its own end token (`{eos}`, id {eos_id})."]
    return ["### llama.cpp", "", "Convert with `convert_hf_to_gguf.py`, then:", "", "```bash",
            f"{call} --override-kv tokenizer.ggml.eos_token_id=int:{sem_id}", "```", "",
            (f"The override makes `{SEM}` (id {sem_id}) the end-of-generation token; without it the student "
             f"stops at its own end token (`{eos}`, id {eos_id}), after the rationale.")]


def _rationale(f: CardFacts, tokenizer: Any) -> list[str]:
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    more = f'pipe(chat + [{{"role": "assistant", "content": reply + "{SEM}"}}])'
    return ["### The rationale, on demand", "",
            (f"The student learnt to explain its answer after `{SEM}`: generate past it to read the explanation. "
             f"With transformers, end at EOS only: `model.generate(**inputs, eos_token_id={eos_id})` returns "
             f"`answer{SEM} rationale{eos}`. With any server, continue the answer: send the reply back as an assistant "
             f"message ending in `{SEM}` (transformers: `{more}`; vLLM: `continue_final_message`), or the prompt "
             f"followed by `answer{SEM}` as a plain completion; the student writes the rationale and stops at `{eos}`. "
             f"Greedy decoding makes this the same text as one generation past `{SEM}`.")]


def _usage(f: CardFacts, tokenizer: Any) -> str:
    sections = [_transformers(f), _vllm(f), _llama_cpp(f, tokenizer)]
    if f.strategy.answer_first:
        sections.append(_rationale(f, tokenizer))
    return "\n\n".join("\n".join(lines) for lines in sections)


def _shell(text: str) -> str:
    """`text` as one bash argument ($'...' keeps the newline)."""
    return "$'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _inference(f: CardFacts) -> str:
    """The rule, then the prompt it applies to."""
    if f.strategy.chat:
        prompt = ("The user message is the question (choices, if any, on a line `Choices: A) … B) …`); the student's chat "
                  "template wraps it, as in training.")
    else:
        prompt = (f"The prompt, exactly:\n\n```text\n{f.strategy.prompt_text('{question}', [])}\n```\n\n"
                  "A chat message's content takes the place of `{question}` (choices, if any, go on a line "
                  "`Choices: A) … B) …` before `Answer:`).")
    return f"{RULES.get(f.strategy.name, '')}\n\n{prompt}"


def model_card(f: CardFacts, tokenizer: Any) -> str:
    """The README.md of an exported folder."""
    cfg, s, tm = f.config, f.strategy, f.train_metrics or {}
    weights = {"full": "full fine-tune (all weights trained)", "merged": "LoRA adapter merged into the student's weights",
               "adapter": f"LoRA adapter alone (load it onto `{cfg.get('student')}` with peft)"}[f.kind]
    prompt = ("the student's chat template, the question as the user message" if s.chat
              else "plain text (below); the chat template renders a user's question as it")
    training = (f"{tm.get('steps', '?')} steps, seed {cfg.get('seed')}, lr {cfg.get('lr')}, max_length {cfg.get('max_length')}, "
                f"best step {tm.get('best_step', '?')}")
    facts = [("task", f"`{cfg.get('task')}`"), ("teacher", f"`{cfg.get('teacher') or '–'}` (its rationales are the training targets)"),
             ("student (base)", f"`{cfg.get('student')}`"), ("strategy", f"`{s.name}`: {SUMMARY.get(s.name, s.name)}"),
             ("weights", weights), ("prompt", prompt), ("training", training)]
    return "\n".join([
        _front_matter(f), "",
        f"# {f.run_id}", "",
        f"A reasoning student distilled with pst by **{SUMMARY.get(s.name, s.name)}** on `{cfg.get('task')}`.", "",
        "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in facts), "",
        "## Results", "", _results(f), "",
        "## Inference rule", "", _inference(f), "",
        "## Use", "", _usage(f, tokenizer), "",
        "## Training configuration", "", "```json", json.dumps(cfg, indent=2, default=str), "```", "",
    ])
