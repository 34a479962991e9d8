"""Bigger students' architectures, tiny: a random-init Qwen2 and Llama-3.2 built from the real configs'
structure (GQA, Qwen2's q/k/v biases and untied head, Llama-3.2's llama3 RoPE scaling and tied head,
their norm epsilons and RoPE bases) at a width of 64, train every strategy with LoRA on the CPU; only
adapters, SEP/SEM rows and the head move, and a killed LoRA run resumes. The real tokenizers are not
needed: the word-level test tokenizer stands in, with Qwen2's spare embedding rows past it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import checkpoint, config, data, loop  # noqa: E402
from pst_core.train.strategies import SEM, SEP, STRATEGIES, get_strategy  # noqa: E402


from test_train_fixtures import Killed, single_thread  # noqa: E402, F401  (single_thread: autouse, one CPU thread)


def tiny_qwen2(vocab: int, seed: int = 0):
    """Qwen2.5-0.5B/1.5B/7B's structure (Qwen2ForCausalLM: q/k/v bias, GQA 7:1 there, 4:1 here; RoPE
    base 1e6, RMSNorm eps 1e-6), tiny, with the 7B's untied output embeddings and 8 spare rows past
    the tokenizer (Qwen's 151,936 rows hold 151,665 tokens: SEP/SEM land in spare rows, no resize)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab + 8, hidden_size=64, intermediate_size=224, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
                                        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, rms_norm_eps=1e-6,
                                        tie_word_embeddings=False, hidden_act="silu"))


def tiny_llama32(vocab: int, seed: int = 0):
    """Llama-3.2-1B's structure (LlamaForCausalLM: GQA 4:1, head_dim 16 here, llama3 RoPE scaling of
    base 5e5 and factor 32, RMSNorm eps 1e-5, tied embeddings), tiny, sized to the tokenizer (resized on SEP/SEM)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192}
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=131072,
                                        rope_parameters=rope, rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu"))


BUILDERS = {"qwen2": tiny_qwen2, "llama3.2": tiny_llama32}


@pytest.fixture(scope="module")
def students_dir(tmp_path_factory) -> dict[str, Path]:
    """Each tiny student saved as a folder: a LoRA checkpoint loads onto its base student."""
    out = {}
    for name, build in BUILDERS.items():
        folder = tmp_path_factory.mktemp(name)
        tok = F.tokenizer()
        build(len(tok), seed=1).save_pretrained(folder)
        tok.save_pretrained(folder)
        out[name] = folder
    return out


def lora_fit(arch: str, strategy: str, student: Path, run: Path, steps: int = 3, on_step=None, **extra):
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": strategy, "task": "toy", "teacher": "t", "lr": 2e-2, "max_steps": steps, "batch_size": 4,
                          "eval_every": steps, "log_every": 1, "progress": False, "seed": 1, "student": str(student),
                          "lora_r": 4, "lora_alpha": 8, **extra})
    run.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    rows = F.rows(8)
    model = BUILDERS[arch](len(tok), seed=1)
    metrics = loop.fit(cfg, get_strategy(strategy, cfg), model, tok, False, data.TrainData(rows, F.targets(8)),
                       data.TrainData(rows[:4], F.targets(4)), str(run), on_step=on_step)
    return metrics, model, tok


@pytest.mark.parametrize("arch", sorted(BUILDERS))
@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_every_strategy_trains_a_tiny_real_architecture_with_lora(arch, strategy, students_dir, tmp_path):
    metrics, model, tok = lora_fit(arch, strategy, students_dir[arch], tmp_path / "run")
    assert torch.isfinite(torch.tensor(metrics["final"]["loss"])) and metrics["lora"]["trainable_params"] > 0
    reference = dict(BUILDERS[arch](len(F.tokenizer()), seed=1).named_parameters())
    new_ids = {tok.convert_tokens_to_ids(SEP), tok.convert_tokens_to_ids(SEM)}
    frozen = [(n.replace(".base_layer", "").replace(".token_adapter", ""), p) for n, p in model.named_parameters() if not p.requires_grad]
    assert {n for n, _ in frozen} == set(reference)  # every weight of the student is frozen
    for name, p in frozen:
        ref = reference[name]
        if p.shape != ref.shape:  # Llama's tables, resized to the tokenizer for SEP/SEM: the old rows are untouched
            assert p.shape[0] == len(tok) and torch.equal(p[: ref.shape[0]], ref), name
        else:  # Qwen2's spare rows: only those SEP/SEM took (set from EOS before training) differ
            assert set((p != ref).reshape(p.shape[0], -1).any(-1).nonzero().flatten().tolist()) <= new_ids, name
    loaded = checkpoint.load_run(str(tmp_path / "run"))  # the adapter onto the saved base student, merged
    assert (loaded.head is not None) == (strategy == "pst")


@pytest.mark.parametrize("arch", sorted(BUILDERS))
def test_a_killed_lora_run_of_a_tiny_real_architecture_resumes(arch, students_dir, tmp_path):
    straight, _, _ = lora_fit(arch, "pst", students_dir[arch], tmp_path / "straight", steps=6, save_every=2)

    def kill(step: int) -> None:
        if step == 5:  # last/ saved at step 4
            raise Killed

    with pytest.raises(Killed):
        lora_fit(arch, "pst", students_dir[arch], tmp_path / "resumed", steps=6, save_every=2, on_step=kill)
    resumed, _, _ = lora_fit(arch, "pst", students_dir[arch], tmp_path / "resumed", steps=6, save_every=2)
    assert resumed["final"]["loss"] == pytest.approx(straight["final"]["loss"], rel=1e-4)
