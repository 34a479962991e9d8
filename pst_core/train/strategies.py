"""The five distillation strategies of ../shared/PST.md: each is a formatter plus a loss.

A formatter turns one training row (question, answer, teacher rationale) into one or more
sequences of role-tagged pieces; the shared loop (`pst_core.train.loop`) tokenises them, runs the
student (`students.forward`) and calls `loss`, the only method a strategy overrides. Every term
is returned separately (unweighted) so the loop logs each one.

| name          | target                | loss                                             |
|---------------|-----------------------|--------------------------------------------------|
| answer_only   | y                     | NTP(y | x)                                       |
| pre_thinking  | r ⊕ SEP ⊕ y           | NTP(r ⊕ SEP ⊕ y | x)                             |
| prefix        | [label] x→y, [rationale] x→r | α·NTP(y | ·) + (1−α)·NTP(r | ·)           |
| post_thinking | y ⊕ SEM ⊕ r           | w_y·NTP(y | x) + w_r·NTP(r | x, y, SEM)          |
| pst           | y ⊕ SEM ⊕ r           | NTP(y | x) + λ_r·NTP(r | ·) + λ_sem·L_sem        |

The prompt x is `Question: ... Answer:` as plain text; with `TrainConfig.chat_template` it is the
question alone as the user turn of the student's own chat template (`chat_prompt`), in training
(`data.tokenize`) and at inference (`inference_prompt`) alike, so an instruct student reads the
format it was tuned on and a chat endpoint serving it needs no pst-specific prompt. The target
(its leading space aside: a reply starts the assistant turn) and the inference rule are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pst_core.errors import ConfigError
from pst_core.prompts import lists_choices
from pst_core.registry import Registry
from pst_core.train import losses
from pst_core.train.config import PostThinkingConfig, PrefixConfig, PSTConfig, TrainConfig
from pst_core.train.losses import ANSWER, RATIONALE

if TYPE_CHECKING:
    import torch

SEP = "<|sep|>"
SEM = "<|sem|>"
LABEL_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "
EOS = None  # piece text standing for the tokenizer's end-of-sequence token
CHAT_DATE = "26 Jul 2024"  # the date Llama-3 chat templates fall back to (see `chat_prompt`)

# View ids: which input view a sequence is (only the prefix strategy has two).
LABEL_VIEW, RATIONALE_VIEW = 0, 1


@dataclass(frozen=True)
class Row:
    """One training row: a question, its gold answer and (for rationale strategies) a teacher rationale."""

    example_id: str
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    answer_type: str = "text"
    rationale: str | None = None
    request_key: str | None = None


@dataclass(frozen=True)
class Seq:
    """One formatted sequence: the prompt text and role-tagged target pieces (SEM/SEP/EOS included)."""

    prompt: str
    pieces: tuple[tuple[str | None, int], ...]
    view: int = LABEL_VIEW


def question_prompt(question: str, choices: list[str] | tuple[str, ...] = ()) -> str:
    """The prompt x shared by all strategies (one format, so strategies differ only in target).

    Choices are listed only when the question does not already show them (`prompts.lists_choices`):
    Fine-tune-CoT's choice questions end in "Answer Choices: (A) ...", and a second list would show
    every option twice.
    """
    return f"Question: {chat_question(question, choices)}\nAnswer:"


def chat_question(question: str, choices: list[str] | tuple[str, ...] = ()) -> str:
    """The question with its choices (when it does not show them): the user's message of a
    chat-templated prompt, and the middle of `question_prompt`."""
    lines = [question.strip()]
    if choices and not lists_choices(question, choices):
        lines.append("Choices: " + " ".join(choices))
    return "\n".join(lines)


def chat_prompt(tokenizer: Any, text: str) -> str:
    """`text` as one user turn of the tokenizer's chat template, ending in the assistant's generation
    prompt: what an instruct student reads with `chat_template` on (its template's own system
    prompt and BOS included, so the string is tokenised without adding special tokens)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"chat_template: true needs a student whose tokenizer has a chat template ({type(tokenizer).__name__} "
                          "has none): use an instruct student or set chat_template: false")
    # date_string: Llama-3's template otherwise writes today's date into its system turn, so the
    # same run would read other prompts on other days (its own default date, fixed here).
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True,
                                         date_string=CHAT_DATE)


@dataclass
class StepOutput:
    """What a student forward pass returns to a loss (see `students.forward`).

    ce [N]: next-token cross-entropy of each target token; roles [N]: its role; rows [N]: its
    sequence; sem_pred [B, D] | None: head output on the pooled hidden state.
    """

    ce: torch.Tensor
    roles: torch.Tensor
    rows: torch.Tensor
    sem_pred: torch.Tensor | None = None


class Strategy:
    """Base strategy: formatting, inference helpers and the loss over all target tokens."""

    name = "base"
    config_cls: type[TrainConfig] = TrainConfig
    answer_first = False
    uses_rationale = True
    uses_semantic = False
    delimiter: str | None = None  # the new token a generation must contain for its answer to be read right

    def __init__(self, cfg: TrainConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else self.config_cls(strategy=self.name)
        self.eos_token: str | None = None
        self.tokenizer: Any = None

    def bind(self, tokenizer: Any) -> Strategy:
        """Remember the tokenizer (its EOS text for `stop_strings`, its chat template for prompts);
        done by training and `load_run`."""
        self.eos_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        return self

    @property
    def chat(self) -> bool:
        """Whether prompts go through the student's chat template (`TrainConfig.chat_template`)."""
        return bool(getattr(self.cfg, "chat_template", False))

    @property
    def add_special_tokens(self) -> bool:
        """Whether tokenising a model input adds the tokenizer's special tokens (BOS): not for a
        chat-templated prompt, which already holds the ones its template writes."""
        return not self.chat

    # -- formatting ---------------------------------------------------------------------------
    def format(self, row: Row) -> list[Seq]:
        """Row -> the sequences this strategy trains on."""
        raise NotImplementedError

    def question_text(self, question: str, choices: list[str] | tuple[str, ...]) -> str:
        """The prompt x before any chat template: `question_prompt`, or with `chat_template` the
        question alone (`chat_question`), which the template then wraps as the user's turn."""
        return chat_question(question, choices) if self.chat else question_prompt(question, choices)

    def prompt_text(self, question: str, choices: list[str] | tuple[str, ...]) -> str:
        """The inference prompt before any chat template (the `Seq.prompt` of the view answered from)."""
        return self.question_text(question, choices)

    def model_input(self, text: str, tokenizer: Any = None) -> str:
        """The exact string the student reads for the prompt `text`: the text itself, or with
        `chat_template` one user turn of the (given or bound) tokenizer's chat template."""
        return chat_prompt(tokenizer if tokenizer is not None else self.tokenizer, text) if self.chat else text

    def inference_prompt(self, question: str, choices: list[str]) -> str:
        """The exact model input at inference time (tokenised with `add_special_tokens`)."""
        return self.model_input(self.prompt_text(question, choices))

    def stop_strings(self) -> list[str]:
        """Strings at which generation may stop."""
        return [self.eos_token] if self.eos_token else []

    def answer_text(self, generated: str) -> str:
        """The part of a decoded generation the answer is extracted from."""
        return generated

    def rationale_text(self, generated: str) -> str | None:
        """The rationale part of a decoded generation, if this strategy writes one."""
        return None

    # -- loss -----------------------------------------------------------------------------------
    def ntp(self, out: StepOutput, batch: dict[str, torch.Tensor], *which: int) -> torch.Tensor:
        """NTP of the target tokens with roles `which`, reduced as `cfg.ntp_reduction` says."""
        if self.cfg.ntp_reduction == "token":
            return losses.ntp(out.ce, out.roles, *which)
        return losses.ntp(out.ce, out.roles, *which, rows=out.rows, n_rows=batch["view"].shape[0])

    def loss(self, out: StepOutput, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its unweighted terms: here NTP over every target token."""
        term = self.ntp(out, batch)
        return term, {"ntp": term}


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", Strategy)


def get_strategy(name: str, cfg: TrainConfig | None = None) -> Strategy:
    """Instantiate strategy `name` (unknown names list the valid ones) with its config."""
    return STRATEGIES.get(name)(cfg)


def _ans(row: Row) -> str:
    return " " + row.answer.strip()


def _rat(row: Row) -> str:
    if not row.rationale:
        raise ValueError(f"row {row.example_id} has no rationale")
    return " " + row.rationale.strip()


@STRATEGIES.register("answer_only")
class AnswerOnly(Strategy):
    """Plain fine-tuning on the gold answer: NTP(y | x)."""

    name = "answer_only"
    uses_rationale = False

    def format(self, row: Row) -> list[Seq]:
        return [Seq(self.question_text(row.question, row.choices), ((_ans(row), ANSWER), (EOS, ANSWER)))]


@STRATEGIES.register("pre_thinking")
class PreThinking(Strategy):
    """Fine-tune-CoT: rationale, SEP, answer; the answer is parsed after SEP."""

    name = "pre_thinking"
    delimiter = SEP

    def format(self, row: Row) -> list[Seq]:
        pieces = ((_rat(row), RATIONALE), (SEP, RATIONALE), (_ans(row), ANSWER), (EOS, ANSWER))
        return [Seq(self.question_text(row.question, row.choices), pieces)]

    def answer_text(self, generated: str) -> str:
        # Strict, as Fine-tune-CoT: no SEP (the budget ran out mid-rationale) means no answer.
        return generated.rsplit(SEP, 1)[1] if SEP in generated else ""

    def rationale_text(self, generated: str) -> str | None:
        return generated.split(SEP, 1)[0].strip() if SEP in generated else generated.strip()


@STRATEGIES.register("prefix")
class Prefix(Strategy):
    """Distilling Step-by-Step: a [label] view x→y and a [rationale] view x→r, mixed by α."""

    name = "prefix"
    config_cls = PrefixConfig

    def format(self, row: Row) -> list[Seq]:
        x = self.question_text(row.question, row.choices)
        return [
            Seq(LABEL_PREFIX + x, ((_ans(row), ANSWER), (EOS, ANSWER)), LABEL_VIEW),
            Seq(RATIONALE_PREFIX + x, ((_rat(row), RATIONALE), (EOS, RATIONALE)), RATIONALE_VIEW),
        ]

    def prompt_text(self, question: str, choices: list[str] | tuple[str, ...]) -> str:
        return LABEL_PREFIX + self.question_text(question, choices)

    def loss(self, out, batch):
        label = self.ntp(out, batch, ANSWER)
        rationale = self.ntp(out, batch, RATIONALE)
        a = self.cfg.alpha
        return a * label + (1 - a) * rationale, {"ntp_label": label, "ntp_rationale": rationale}


@STRATEGIES.register("post_thinking")
class PostThinking(Strategy):
    """Answer, SEM, rationale; inference stops at SEM. The SEM token belongs to the answer term."""

    name = "post_thinking"
    config_cls = PostThinkingConfig
    answer_first = True
    delimiter = SEM

    def format(self, row: Row) -> list[Seq]:
        pieces = ((_ans(row), ANSWER), (SEM, ANSWER), (_rat(row), RATIONALE), (EOS, RATIONALE))
        return [Seq(self.question_text(row.question, row.choices), pieces)]

    def stop_strings(self) -> list[str]:
        return [SEM, *super().stop_strings()]

    def answer_text(self, generated: str) -> str:
        return generated.split(SEM, 1)[0]

    def rationale_text(self, generated: str) -> str | None:
        return generated.split(SEM, 1)[1].strip() if SEM in generated else None

    def weights(self) -> tuple[float, float]:
        """(answer weight, rationale weight) of the two next-token terms."""
        return self.cfg.w_answer, self.cfg.w_rationale

    def loss(self, out, batch):
        w_y, w_r = self.weights()
        answer = self.ntp(out, batch, ANSWER)
        rationale = self.ntp(out, batch, RATIONALE)
        return w_y * answer + w_r * rationale, {"ntp_answer": answer, "ntp_rationale": rationale}


@STRATEGIES.register("pst")
class PST(PostThinking):
    """Post-Semantic-Thinking: Post-Thinking with NTP(y) + λ_r·NTP(r) plus λ_sem·L_sem on the SEM state."""

    name = "pst"
    config_cls = PSTConfig

    @property
    def uses_semantic(self) -> bool:  # type: ignore[override]
        # λ_sem = 0 builds no head, so PST is then exactly Post-Thinking (same graph, same loss).
        return self.cfg.lambda_sem > 0

    def weights(self) -> tuple[float, float]:
        return 1.0, self.cfg.lambda_r

    def loss(self, out, batch):
        total, terms = super().loss(out, batch)
        if not self.uses_semantic:
            return total, terms
        # A sequence cut before its SEM (or with no rationale position) has no state to pool.
        valid = batch["sem_mask"].any(-1)
        sem = losses.sem_loss(out.sem_pred, batch["sem_target"], self.cfg.sem_loss, self.cfg.sem_temperature, valid)
        return total + self.cfg.lambda_sem * sem, {**terms, "sem": sem}
