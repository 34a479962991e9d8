"""Training configuration: one frozen `TrainConfig`, subclassed by each strategy that adds knobs.

`PrefixConfig` adds the view weight α, `PostThinkingConfig` the answer/rationale weights and
`PSTConfig` (a Post-Thinking config) the semantic loss knobs of ../shared/PST.md. A weight of 0
turns its term off. `resolve` builds the right class for a strategy from a dict of options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pst_core.config import check, from_dict, option
from pst_core.embed.config import DEFAULT_ENCODER

DEFAULT_STUDENT = "HuggingFaceTB/SmolLM2-135M-Instruct"
PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16")
SELECT_BY = ("loss", "exact_match")
NTP_REDUCTIONS = ("sequence", "token")
NEW_TOKEN_INITS = ("eos", "text", "mean")  # see pst_core.train.students.init_new_tokens
TRACKERS = ("tensorboard", "mlflow", "wandb", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio")  # accelerate's


@dataclass(frozen=True)
class TrainConfig:
    """Options shared by every strategy: data, student, optimisation, validation, checkpoints."""

    strategy: str = option("pst", "Strategy name: answer_only, pre_thinking, prefix, post_thinking, pst.")
    task: str = option("", "Task whose examples and rationales are trained on.")
    teacher: str = option("", "Teacher whose rationales are used (the rationales store partition).")
    student: str = option(DEFAULT_STUDENT, "Hub id or local folder of a causal or seq2seq student.")
    seed: int = option(0, "Seed for initialisation of new weights, data order and dropout.")
    # data
    correct_only: bool = option(True, "Train only on rationales whose answer matched gold (Fine-tune-CoT filter).")
    max_rationales_per_example: int = option(0, "Rationales kept per question (diverse reasoning); 0 keeps all.")
    max_train_examples: int = option(0, "Cap on training rows after filtering (0 = no cap); for smoke runs.")
    max_val_examples: int = option(256, "Validation questions used for model selection (0 = all).")
    max_length: int = option(512, "Token cap per sequence: longer rationales are cut at the end, the answer, SEP/SEM and EOS "
                             "always stay; a row whose answer cannot fit is dropped and counted.")
    perturb: str | None = option(None, "Robustness study: perturb training rationales ('shuffle' or 'numbers').")
    perturb_rate: float = option(0.0, "Fraction of training rationales perturbed (0 = off).")
    drop_test_overlap: bool = option(True, "Drop train and validation questions identical to a test question (text and "
                                     "choices): Fine-tune-CoT's published split repeats 5 of MultiArith's 180 test "
                                     "questions in train, so training on them would score memorised answers as test accuracy.")
    ntp_reduction: str = option("sequence", "How NTP averages: 'sequence' (each example's mean over its target tokens, "
                                "then the mean over examples, as NTP(t | c) is defined) or 'token' (one mean over the batch's tokens).")
    # optimisation
    batch_size: int = option(16, "Examples per micro-batch (per device).")
    grad_accum: int = option(1, "Micro-batches accumulated per optimizer step.")
    lr: float = option(1e-4, "Peak AdamW learning rate.")
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to biases and norms).")
    betas: tuple[float, float] = option((0.9, 0.95), "AdamW betas.")
    warmup_ratio: float = option(0.05, "Fraction of steps of linear warm-up before the cosine decay.")
    min_lr_ratio: float = option(0.1, "Cosine decays to this fraction of the peak learning rate.")
    epochs: float = option(3.0, "Passes over the training rows (used when max_steps is 0).")
    max_steps: int = option(0, "Optimizer steps to run; 0 derives them from epochs.")
    clip_grad_norm: float = option(1.0, "Gradient clipping norm (0 = off).")
    precision: str = option("auto", "auto (bf16-mixed on GPU, fp32 on CPU), fp32, bf16-mixed (autocast), bf16 (bf16 weights).")
    compile: bool = option(False, "torch.compile the student (GPU; pays off on long runs).")
    group_by_length: bool = option(True, "Batch rows of similar length together (less padding), order still shuffled.")
    # validation, logging, checkpoints
    eval_every: int = option(200, "Validate every N optimizer steps (and at the end); 0 = only at the end.")
    select_by: str = option("loss", "Best checkpoint by validation 'loss' or answer 'exact_match' (greedy decoding).")
    eval_max_new_tokens: int = option(256, "Generation budget per validation question when selecting by exact match "
                                      "(as EvalConfig.max_new_tokens: Pre-Thinking needs room for its rationale).")
    eval_batch_size: int = option(32, "Prompts per validation generation batch (as EvalConfig.batch_size).")
    eval_dtype: str = option("auto", "Weights while generating validation answers, as EvalConfig.dtype: auto (bfloat16 on "
                             "CUDA, float32 elsewhere), float32, bfloat16. Validation is scored as test is.")
    log_every: int = option(10, "Write a history line every N optimizer steps.")
    save_every: int = option(0, "Save the resumable last/ checkpoint every N steps (0 = at each validation).")
    progress: bool = option(True, "Show a progress bar with tokens/s.")
    # real students
    new_token_init: str = option("eos", "How the rows of the new SEP/SEM tokens start: 'eos' (a copy of EOS, the ending the "
                                 "pretrained model already predicts there), 'text' (the rows of the token's meaning in words) "
                                 "or 'mean' (transformers' default; SmolLM2-135M then never emits SEP after a 20-step CPU run: "
                                 "bench/README.md).")
    chat_template: bool = option(False, "Wrap every prompt (training and inference) in the student's own chat template as one "
                                 "user turn followed by the assistant's generation prompt, for instruct students; off by "
                                 "default so runs stay comparable with the plain 'Question: ... Answer:' prompt.")
    keep_last: bool = option(False, "Keep the resumable last/ state (optimizer, RNG) after the run finished; it is about "
                             "3x the model's size and only needed to continue training past max_steps.")
    # memory: parameter-efficient fine-tuning (LoRA through peft) and activation checkpointing
    lora_r: int = option(0, "LoRA rank: > 0 freezes the student and trains low-rank adapters (peft) plus the SEP/SEM "
                         "embedding rows and the semantic head; 0 trains every weight (full fine-tuning).")
    lora_alpha: int = option(16, "LoRA scale numerator: an adapter adds (lora_alpha / lora_r) * B @ A to its weight.")
    lora_dropout: float = option(0.0, "Dropout on the input of each LoRA adapter.")
    lora_target_modules: tuple[str, ...] = option((), "Module names that get adapters; empty = every attention and MLP "
                                                  "projection of the architecture (pst_core.train.adapters.DEFAULT_TARGETS), "
                                                  "peft's all-linear for others.")
    lora_modules_to_save: tuple[str, ...] = option((), "Modules trained in full beside the adapters (peft modules_to_save), "
                                                   "e.g. [lm_head]; the new tokens' rows train without it.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass instead of storing them: "
                                          "less memory for long sequences or big students, ~30% more compute per step.")
    # experiment tracking
    report_to: tuple[str, ...] = option((), "Experiment trackers (accelerate log_with) that get every logged line of "
                                        "history.jsonl: tensorboard (offline, <run>/tb/), mlflow, wandb, ...; empty = none.")
    tracker_project: str = option("pst", "Project (W&B) or experiment (MLflow) name the runs are logged under; each run is named by its run id.")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(self.batch_size >= 1 and self.grad_accum >= 1, name, "batch_size and grad_accum must be >= 1")
        check(self.lr > 0, name, "lr must be > 0")
        check(0 <= self.warmup_ratio < 1 and 0 <= self.min_lr_ratio <= 1, name, "warmup_ratio in [0, 1), min_lr_ratio in [0, 1]")
        check(self.epochs > 0 or self.max_steps > 0, name, "set epochs > 0 or max_steps > 0")
        check(self.max_length >= 8, name, "max_length must be >= 8")
        check(self.precision in PRECISIONS, name, f"precision must be one of {', '.join(PRECISIONS)}")
        check(self.ntp_reduction in NTP_REDUCTIONS, name, f"ntp_reduction must be one of {', '.join(NTP_REDUCTIONS)}")
        check(self.select_by in SELECT_BY, name, f"select_by must be one of {', '.join(SELECT_BY)}")
        check(self.eval_max_new_tokens >= 1 and self.eval_batch_size >= 1, name, "eval_max_new_tokens and eval_batch_size must be >= 1")
        check(self.new_token_init in NEW_TOKEN_INITS, name, f"new_token_init must be one of {', '.join(NEW_TOKEN_INITS)}")
        check(self.eval_dtype in ("auto", "float32", "bfloat16"), name, "eval_dtype must be auto, float32 or bfloat16")
        check(self.perturb in (None, "shuffle", "numbers"), name, "perturb must be null, 'shuffle' or 'numbers'")
        check(0.0 <= self.perturb_rate <= 1.0, name, "perturb_rate must be in [0, 1]")
        check(self.perturb_rate == 0 or self.perturb is not None, name, "perturb_rate > 0 needs perturb")
        check(min(self.max_rationales_per_example, self.max_train_examples, self.max_val_examples, self.eval_every, self.save_every) >= 0,
              name, "counts must be >= 0")
        check(self.log_every >= 1 and self.clip_grad_norm >= 0 and self.weight_decay >= 0, name, "log_every >= 1, clip_grad_norm >= 0, weight_decay >= 0")
        for key in ("lora_target_modules", "lora_modules_to_save", "report_to"):  # JSON/YAML lists -> tuples (hashable)
            object.__setattr__(self, key, tuple(getattr(self, key)))
        check(self.lora_r >= 0 and self.lora_alpha > 0 and 0.0 <= self.lora_dropout < 1.0, name,
              "lora_r >= 0, lora_alpha > 0, lora_dropout in [0, 1)")
        check(self.lora_r > 0 or not (self.lora_target_modules or self.lora_modules_to_save), name,
              "lora_target_modules and lora_modules_to_save need lora_r > 0 (set a rank, e.g. lora_r: 16)")
        unknown = sorted(set(self.report_to) - set(TRACKERS))
        check(not unknown, name, f"report_to: unknown tracker {', '.join(unknown)}; valid: {', '.join(TRACKERS)}")


@dataclass(frozen=True)
class PrefixConfig(TrainConfig):
    """Distilling Step-by-Step: label and rationale views of each question, mixed by alpha."""

    alpha: float = option(0.5, "Weight of the [label] view; the [rationale] view gets 1 - alpha.")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.alpha <= 1.0, type(self).__name__, "alpha must be in [0, 1]")


@dataclass(frozen=True)
class PostThinkingConfig(TrainConfig):
    """Answer first, then SEM, then the rationale; two weighted next-token terms."""

    w_answer: float = option(1.0, "Weight of NTP(answer ⊕ SEM | x).")
    w_rationale: float = option(1.0, "Weight of NTP(rationale | x, answer, SEM).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.w_answer >= 0 and self.w_rationale >= 0, type(self).__name__, "weights must be >= 0")


@dataclass(frozen=True)
class PSTConfig(TrainConfig):
    """Post-Semantic-Thinking: Post-Thinking's format plus a semantic loss on the SEM hidden state."""

    lambda_r: float = option(0.5, "Weight of NTP(rationale | x, answer, SEM); 0 = semantic supervision only.")
    lambda_sem: float = option(1.0, "Weight of the semantic loss; 0 reduces PST to Post-Thinking.")
    sem_pool: str = option("token", "Student state fed to the head: 'token' (at SEM) or 'mean' (over rationale positions).")
    sem_loss: str = option("cosine", "'cosine' (1 - cos), 'mse' (on normalised vectors) or 'infonce' (in-batch).")
    sem_temperature: float = option(0.05, "InfoNCE temperature tau.")
    head_hidden: int = option(0, "Hidden width of the projection head (0 = the student's hidden size).")
    encoder: str = option(DEFAULT_ENCODER, "Sentence encoder whose precomputed rationale embeddings are the targets.")

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        check(self.lambda_r >= 0 and self.lambda_sem >= 0, name, "lambda_r and lambda_sem must be >= 0")
        check(self.sem_pool in ("token", "mean"), name, "sem_pool must be 'token' or 'mean'")
        check(self.sem_loss in ("cosine", "mse", "infonce"), name, "sem_loss must be cosine, mse or infonce")
        check(self.sem_temperature > 0 and self.head_hidden >= 0, name, "sem_temperature > 0, head_hidden >= 0")


def resolve(values: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build the config class of the chosen strategy from a dict plus (non-None) overrides."""
    from pst_core.train.strategies import STRATEGIES

    merged = {**(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
    if isinstance(merged.get("betas"), list):  # JSON/YAML have no tuples
        merged["betas"] = tuple(merged["betas"])
    cls = STRATEGIES.get(merged.get("strategy", "pst")).config_cls
    return from_dict(cls, merged)


def strategy_options(section: dict[str, Any], strategy: str) -> dict[str, Any]:
    """A config section for one strategy: its shared options plus that strategy's own sub-section
    (`{lr: 1e-4, pst: {lambda_sem: 0.5}}`); other strategies' sub-sections are dropped."""
    from pst_core.train.strategies import STRATEGIES

    names = set(STRATEGIES.names())
    return {k: v for k, v in section.items() if k not in names} | dict(section.get(strategy) or {})


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of `cfg` with some fields changed (re-checked)."""
    return dataclasses.replace(cfg, **changes)
