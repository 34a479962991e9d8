"""Training data: examples x rationales x embeddings from the store, tokenised once, length-grouped.

Rows come from `examples` (gold answers) joined with the teacher's `rationales` (successful rows,
correct only by default, deduplicated by request key, at most N per question; a stored row serves
every example with the same question, since identical questions share one request); PST adds the
precomputed embedding of each rationale (`pst_core.embed.read_vectors`: training never runs the
encoder). Train and validation questions identical to a test question are left out
(`split_examples`). Tokenised sequences are cached under `<store>/cache/tokens/` keyed by tokenizer,
strategy, length cap and texts; a sequence longer than the cap loses rationale tokens only, and a
row whose answer cannot fit is dropped before training (`drop_too_long`). `fingerprint` names the
assembled data, so a run is reused only on the data it was trained on. With `chat_template` each
prompt is tokenised through the student's chat template (`strategies.chat_prompt`), exactly as
`Strategy.inference_prompt` renders it at inference.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pst_core import answers, examples, schemas, store
from pst_core.errors import DataError
from pst_core.train.config import TrainConfig
from pst_core.train.losses import NONE, RATIONALE
from pst_core.train.strategies import EOS, SEM, SEP, Row, Seq, Strategy, chat_prompt

if TYPE_CHECKING:
    import torch

# 2: choices are not listed twice in the prompt; truncation cuts only rationale text.
CACHE_VERSION = "2"
log = logging.getLogger("pst.train")


@dataclass
class TrainData:
    """Rows of one split, their semantic targets [n, D] (PST) and a note of what was done."""

    rows: list[Row]
    targets: np.ndarray | None = None
    notes: dict[str, Any] | None = None
    # What the targets are, without their bytes: the encoder, its revision and the embedded texts'
    # digest. Vectors made by the same encoder revision from the same texts on another CPU differ
    # in their last bits only; `portable_fingerprint` uses this instead of the bytes.
    target_source: str | None = None


def load_rationales(root: str, cfg: TrainConfig, split: str) -> pa.Table:
    """Successful rationale rows of (teacher, task, split): no error, non-empty text, one per request key,
    judged by today's answer rules.

    The correctness filter and the per-question cap are applied per example in `assemble`, because
    one stored row can serve several examples (identical questions share a request key).
    """
    from pst_core.harvest import rationales

    # One row per request key (a success wins over an earlier error), judged by today's answer
    # rules: rows a harvest judged under other rules are judged again from their stored text.
    table = rationales.read(root, cfg.teacher, cfg.task, split, columns=["request_key", "example_id", "sample_index", "rationale",
                                                                        "predicted_answer", "is_correct", "error"])
    keep = pc.and_(pc.is_null(table["error"]), pc.greater(pc.utf8_length(pc.fill_null(table["rationale"], "")), 0))
    table = table.filter(keep)
    # Sorted so dedupe, the per-question cap and perturbation plans are reproducible.
    table = table.take(pc.sort_indices(table, [("example_id", "ascending"), ("sample_index", "ascending"), ("request_key", "ascending")]))
    seen: set[str] = set()
    take = []
    for i, key in enumerate(table["request_key"].to_pylist()):
        if key not in seen:
            seen.add(key)
            take.append(i)
    return table.take(pa.array(take, type=pa.int64()))


def question_key(e: Any) -> tuple[str, tuple[str, ...]]:
    """What makes two examples the same request to a teacher: question text and choices."""
    return e.question.strip(), tuple(e.choices or ())


def rationale_rows(table: pa.Table, exs: dict[str, Any], cfg: TrainConfig) -> list[tuple[Any, str, str]]:
    """(example, rationale, request key) triples: each stored rationale serves every example of its split
    with the same question, correct only by default, at most `max_rationales_per_example` per example.

    The store keeps one row per request key and identical questions make identical requests, so the
    row names only the first of them (Multiarith train: 366 rows for 378 examples); joining on
    example_id alone would silently drop the others. A sibling with a different gold answer is
    re-scored from the stored predicted answer.
    """
    same: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
    for e in exs.values():
        same.setdefault(question_key(e), []).append(e)
    found = []
    for ex_id, sample, text, key, predicted, correct in zip(
            *(table[c].to_pylist() for c in ("example_id", "sample_index", "rationale", "request_key", "predicted_answer", "is_correct"))):
        source = exs.get(ex_id)
        if source is None:
            continue
        for e in same[question_key(source)]:
            ok = bool(correct) if (e.gold_answer, e.answer_type) == (source.gold_answer, source.answer_type) \
                else answers.is_correct(predicted, e.gold_answer, e.answer_type)
            if ok or not cfg.correct_only:
                found.append((e.example_id, sample, key, e, text))
    found.sort(key=lambda f: f[:3])
    per_example: dict[str, int] = {}
    out = []
    for ex_id, _, key, e, text in found:
        if cfg.max_rationales_per_example and per_example.get(ex_id, 0) >= cfg.max_rationales_per_example:
            continue
        per_example[ex_id] = per_example.get(ex_id, 0) + 1
        out.append((e, text, key))
    return out


def split_examples(root: str, cfg: TrainConfig, split: str) -> tuple[list[examples.Example], int]:
    """The examples of `split` and how many were left out for asking a test question.

    Fine-tune-CoT's published split repeats test questions in train (MultiArith: 5 of its 180,
    StrategyQA: 1), so with `drop_test_overlap` a train or validation example whose `question_key`
    is a test example's is dropped: training or selecting on it would score a memorised answer as
    test accuracy.
    """
    exs = examples.load(root, cfg.task, split)
    if split == "test" or not cfg.drop_test_overlap or not exs:
        return exs, 0
    test = {question_key(e) for e in examples.load(root, cfg.task, "test")}
    kept = [e for e in exs if question_key(e) not in test]
    if len(kept) < len(exs):
        log.info("%s/%s: dropped %d of %d questions that are also test questions", cfg.task, split, len(exs) - len(kept), len(exs))
    return kept, len(exs) - len(kept)


def assemble(root: str, cfg: TrainConfig, strategy: Strategy, split: str) -> TrainData:
    """The rows (and PST targets) of `split` for `strategy`; perturbation applies to train only."""
    loaded, overlap = split_examples(root, cfg, split)
    if not loaded and not overlap:
        raise DataError(f"no {split} examples for task {cfg.task!r} in {root}: run `pst data prepare --task {cfg.task}`")
    exs = {e.example_id: e for e in loaded}

    def row(e: Any, rationale: str | None = None, key: str | None = None) -> Row:
        return Row(e.example_id, e.question, e.gold_answer, tuple(e.choices or ()), e.answer_type, rationale, key)

    if not strategy.uses_rationale:
        rows = [row(e) for e in exs.values()]
    else:
        rows = [row(e, r, k) for e, r, k in rationale_rows(load_rationales(root, cfg, split), exs, cfg)]
    cap = cfg.max_train_examples if split == "train" else cfg.max_val_examples
    if cap and len(rows) > cap:
        rows = sorted(random.Random(f"{cfg.seed}:{split}").sample(rows, cap), key=lambda r: (r.example_id, r.request_key or ""))
    notes: dict[str, Any] = {"rows": len(rows), "questions": len({r.example_id for r in rows}), "dropped_test_overlap": overlap}
    embed_texts = [r.rationale or "" for r in rows]
    if split == "train" and cfg.perturb_rate > 0 and strategy.uses_rationale:
        texts, embed_texts, notes["perturbed"] = _perturb(rows, cfg)
        rows = [Row(r.example_id, r.question, r.answer, r.choices, r.answer_type, t, r.request_key) for r, t in zip(rows, texts)]
    targets = None
    if strategy.uses_semantic and rows:
        from pst_core.embed import read_vectors

        from pst_core.embed import encoder as enc

        targets = read_vectors(root, cfg.encoder, embed_texts)
        digest = hashlib.sha256(json.dumps(embed_texts, ensure_ascii=False).encode()).hexdigest()
        return TrainData(rows, targets, notes, f"{cfg.encoder}@{enc.revision(enc.resolve(cfg.encoder))}:{digest}")
    return TrainData(rows, targets, notes)


def _perturb(rows: list[Row], cfg: TrainConfig) -> tuple[list[str], list[str], dict[str, Any]]:
    """Perturb training rationales as (target text, text whose stored embedding is the target) pairs.

    The perturbation acts on (text, embedding) pairs, because the sentence encoder never runs in
    training: `shuffle` swaps whole pairs (the donor question's rationale and its stored
    embedding); `numbers` alters the digits of the text and keeps the original text's embedding as
    the semantic target (MiniLM-style encoders are nearly blind to digit changes, and no vector of
    the altered text exists). This is recorded in the run's notes.
    """
    from pst_core.perturb import perturb_rationales

    originals = [r.rationale or "" for r in rows]
    # Grouped by question, not example id: a twin question's rationale is no noise for its twin.
    groups = [repr(question_key(r)) for r in rows]
    new = perturb_rationales(originals, cfg.perturb, cfg.perturb_rate, cfg.seed, groups=groups)
    embed_texts = new if cfg.perturb == "shuffle" else originals
    changed = sum(t != o for t, o in zip(new, originals))
    note = {"kind": cfg.perturb, "rate": cfg.perturb_rate, "changed": changed,
            "semantic_target": "donor embedding" if cfg.perturb == "shuffle" else "original rationale embedding"}
    return new, embed_texts, note


@dataclass
class Tokenized:
    """Token ids of every formatted sequence; `row` maps each sequence to its training row."""

    prompt: list[list[int]]
    target: list[list[int]]
    roles: list[list[int]]
    sem_index: list[int]  # index of SEM within the target, -1 when none
    view: list[int]
    row: list[int]

    def lengths(self) -> np.ndarray:
        """Tokens per training row (all of its sequences), for length grouping and tokens/s."""
        out = np.zeros(max(self.row, default=-1) + 1, dtype=np.int64)
        for r, p, t in zip(self.row, self.prompt, self.target):
            out[r] += len(p) + len(t)
        return out


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the vocabulary and special tokens (the part that changes token ids)."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    special = json.dumps([tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token, type(tokenizer).__name__])
    return hashlib.sha256((vocab + special).encode()).hexdigest()[:16]


def tokenize(rows: list[Row], strategy: Strategy, tokenizer: Any, max_length: int, is_encoder_decoder: bool,
             cache_dir: str | None = None) -> Tokenized:
    """Format and tokenise every row (cached on disk when `cache_dir` is given).

    A row whose answer cannot fit `max_length` raises DataError: `drop_too_long` (which `pst
    train` runs first) leaves such rows out and counts them.
    """
    key = None
    if cache_dir:
        texts = json.dumps([[r.question, r.answer, list(r.choices), r.rationale] for r in rows], ensure_ascii=False)
        parts = [CACHE_VERSION, strategy.name, str(max_length), str(is_encoder_decoder), tokenizer_fingerprint(tokenizer), texts]
        if strategy.chat:  # appended only when on, so the plain prompt's cache keys stay as they were
            parts.append("chat:" + str(tokenizer.chat_template))
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
        path = f"{cache_dir.rstrip('/')}/{key}.parquet"
        fs, local = store.filesystem(path)
        if fs.exists(local):
            with fs.open(local, "rb") as fh:
                return Tokenized(**pq.read_table(fh).to_pydict())
    out = Tokenized([], [], [], [], [], [])
    for i, row in enumerate(rows):
        for seq in strategy.format(row):
            fitted = _fitted(seq, tokenizer, max_length, is_encoder_decoder, strategy.chat)
            if fitted is None:
                raise DataError(f"row {row.example_id}: prompt tail and answer do not fit max_length={max_length}; "
                                "leave such rows out with pst_core.train.data.drop_too_long (pst train does)")
            prompt, target, roles, sem = fitted
            out.prompt.append(prompt)
            out.target.append(target)
            out.roles.append(roles)
            out.sem_index.append(sem)
            out.view.append(seq.view)
            out.row.append(i)
    if key is not None:
        store.write_part(cache_dir, pa.table(out.__dict__), name=f"{key}.parquet")
    return out


def prompt_ids(tokenizer: Any, prompt: str, chat: bool = False) -> list[int]:
    """Token ids of a training prompt: the text with the tokenizer's special tokens, or (`chat`) its
    chat-template rendering, which carries its own (`Strategy.inference_prompt` at inference)."""
    if chat:
        return tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    return tokenizer(prompt)["input_ids"]


def _fitted(seq: Seq, tokenizer: Any, max_length: int, enc_dec: bool,
            chat: bool = False) -> tuple[list[int], list[int], list[int], int] | None:
    """(prompt, target, roles, SEM index or -1) of one sequence fitted into `max_length`, or None."""
    prompt = prompt_ids(tokenizer, seq.prompt, chat)
    target: list[int] = []
    roles: list[int] = []
    sem, span = -1, None
    for text, role in seq.pieces:
        if chat and not target and text is not EOS:
            text = text.lstrip()  # an assistant turn starts at the line the template opens, with no space
        ids = [tokenizer.eos_token_id] if text is EOS else tokenizer(text, add_special_tokens=False)["input_ids"]
        if text == SEM:
            sem = len(target)
        if role == RATIONALE and text not in (SEP, SEM, EOS):
            span = (len(target), len(target) + len(ids))  # the rationale text: the only part ever cut
        target += ids
        roles += [role] * len(ids)
    fitted = _truncate(prompt, target, roles, span, max_length, enc_dec)
    if fitted is None:
        return None
    removed = len(target) - len(fitted[1])
    if span is not None and sem >= span[1]:
        sem -= removed
    return (*fitted, sem)


def _truncate(prompt: list[int], target: list[int], roles: list[int], span: tuple[int, int] | None, max_length: int,
              enc_dec: bool) -> tuple[list[int], list[int], list[int]] | None:
    """Fit a sequence into `max_length`, cutting only the end of the rationale text (`span`, its
    [start, end) in the target); None when even that cannot make it fit.

    The answer, SEP/SEM and the closing EOS are what the student must learn to write and to stop
    with: cutting Pre-Thinking's target (rationale, SEP, answer, EOS) at its end would train it to
    ramble without ever answering, and an answer-first target without its EOS never to stop. The
    prompt keeps its end (the question tail and "Answer:"), and gives way down to half the budget
    when the target needs the room. A target whose protected part cannot fit, or whose rationale
    would be cut away entirely (a Pre-Thinking row that answers without reasoning), is None.
    """
    if enc_dec:
        prompt, room = prompt[-max_length:], max_length
    else:
        if len(prompt) + len(target) > max_length:
            prompt = prompt[-max(max_length // 2, max_length - len(target)):]
        room = max_length - len(prompt)
    excess = len(target) - room
    if excess <= 0:
        return prompt, target, roles
    start, end = span or (0, 0)
    if excess >= end - start:
        return None
    cut = end - excess
    return prompt, target[:cut] + target[end:], roles[:cut] + roles[end:]


def _with_delimiters(tokenizer: Any) -> Any:
    """`tokenizer`, or a copy with SEP and SEM added as the loop adds them (`students.add_special_tokens`),
    so lengths are measured on training's ids without resizing the model before the loop seeds it."""
    new = [t for t in (SEP, SEM) if t not in tokenizer.get_vocab()]
    if not new:
        return tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    return tokenizer


def drop_too_long(td: TrainData, strategy: Strategy, tokenizer: Any, max_length: int, is_encoder_decoder: bool) -> TrainData:
    """`td` without the rows that cannot fit `max_length` with their answer intact (any of their
    sequences), counted in `notes["dropped_too_long"]`; PST targets follow the kept rows."""
    tokenizer = _with_delimiters(tokenizer)
    keep = [i for i, row in enumerate(td.rows)
            if all(_fitted(seq, tokenizer, max_length, is_encoder_decoder, strategy.chat) is not None for seq in strategy.format(row))]
    dropped = len(td.rows) - len(keep)
    if dropped:
        log.info("dropped %d of %d rows whose answer does not fit max_length=%d", dropped, len(td.rows), max_length)
    targets = td.targets[keep] if td.targets is not None else None
    return TrainData([td.rows[i] for i in keep], targets, {**(td.notes or {}), "dropped_too_long": dropped}, td.target_source)


def fingerprint(train: TrainData, val: TrainData | None, questions: list[Row], portable: bool = False) -> str:
    """sha256 of the data a run learns and is selected on: every train and validation row (ids,
    question, answer, choices, rationale, request key), their semantic targets' bytes and the
    validation questions, in their (deterministic) assembled order. Cheap: no tokenizer, no model.
    `portable` hashes what the targets are (`target_source`) instead of their bytes: the same data
    re-embedded on another machine, for results carried between machines."""
    h = hashlib.sha256()

    def add(chunk: bytes) -> None:
        h.update(len(chunk).to_bytes(8, "little") + chunk)  # length-prefixed: no two inputs hash alike

    for name, part in (("train", train), ("validation", val)):
        rows = part.rows if part is not None else []
        add(json.dumps([name, [dataclasses.astuple(r) for r in rows]], ensure_ascii=False).encode())
        if part is not None and part.targets is not None and portable:
            add(json.dumps(["targets", part.target_source]).encode())
        elif part is not None and part.targets is not None:
            vectors = np.ascontiguousarray(part.targets, dtype="<f4")
            add(json.dumps(list(vectors.shape)).encode())
            add(vectors.tobytes())
    add(json.dumps(["questions", [dataclasses.astuple(q) for q in questions]], ensure_ascii=False).encode())
    return h.hexdigest()


def batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
    """Row indices of every batch of one epoch: a seeded shuffle, then (optionally) sorting within
    windows of 50 batches so similar lengths share a batch, then a shuffle of the batch order."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        window = batch_size * 50
        order = np.concatenate([w[np.argsort(-lengths[w], kind="stable")] for w in np.split(order, range(window, len(order), window))]) if len(order) else order
    out = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if group_by_length:
        out = [out[i] for i in rng.permutation(len(out))]
    return out


def collate(tok: Tokenized, row_ids: list[int], seq_index: dict[int, list[int]], pad_id: int, is_encoder_decoder: bool,
            sem_pool: str = "token", targets: np.ndarray | None = None, decoder_start: int | None = None,
            pad_multiple: int = 8, eos_id: int | None = None) -> dict[str, torch.Tensor]:
    """Pad the sequences of `row_ids` into tensors (right padding; lengths rounded to `pad_multiple`).

    Causal: input = prompt ⊕ target, labels -100 on the prompt. Seq2seq: encoder = prompt, decoder
    input = start ⊕ target[:-1]. `pred_index` lists, row-major, the flat [B * T] position whose
    hidden state predicts each target token. `sem_mask` marks the hidden state(s) the semantic head reads: the
    SEM input position (`token`) or the rationale input positions (`mean`; the closing `eos_id` is not
    rationale text and is left out).
    """
    import torch

    seqs = [s for r in row_ids for s in seq_index[r]]
    enc, labels, roles, hid_mask = [], [], [], []
    for s in seqs:
        p, t, ro = tok.prompt[s], tok.target[s], tok.roles[s]
        offset = 1 if is_encoder_decoder else len(p)  # where target token i sits as a model input
        if is_encoder_decoder:
            enc.append(p)
            labels.append(t)
            roles.append(ro)
        else:
            enc.append(p + t)
            labels.append([-100] * len(p) + t)
            roles.append([NONE] * len(p) + ro)
        n_hidden = len(t) if is_encoder_decoder else len(p) + len(t)
        m = [0] * n_hidden
        if sem_pool == "token" and 0 <= tok.sem_index[s] and offset + tok.sem_index[s] < n_hidden:
            m[offset + tok.sem_index[s]] = 1
        elif sem_pool == "mean":
            for i, role in enumerate(ro):
                if role == RATIONALE and t[i] != eos_id and offset + i < n_hidden:
                    m[offset + i] = 1
        hid_mask.append(m)

    def pad(lists: list[list[int]], value: int) -> torch.Tensor:
        width = -(-max(len(x) for x in lists) // pad_multiple) * pad_multiple
        return torch.tensor([x + [value] * (width - len(x)) for x in lists], dtype=torch.long)

    batch = {"input_ids": pad(enc, pad_id), "attention_mask": pad([[1] * len(x) for x in enc], 0),
             "labels": pad(labels, -100), "roles": pad(roles, NONE), "sem_mask": pad(hid_mask, 0),
             "view": torch.tensor([tok.view[s] for s in seqs])}
    if is_encoder_decoder:
        start = pad_id if decoder_start is None else decoder_start
        batch["decoder_input_ids"] = pad([[start] + t[:-1] for t in labels], pad_id)
        batch["decoder_attention_mask"] = pad([[1] * len(t) for t in labels], 0)
    # Flat index [N] of the hidden state that predicts each target token, row-major: built here on
    # the host so the forward gathers target positions without a data-dependent (syncing) mask.
    labels_t = batch["labels"]
    shift = 0 if is_encoder_decoder else 1  # causal: position t predicts token t + 1
    where = (labels_t[:, shift:] != -100).nonzero()
    batch["pred_index"] = where[:, 0] * labels_t.shape[1] + where[:, 1]
    if targets is not None:
        batch["sem_target"] = torch.from_numpy(np.stack([targets[tok.row[s]] for s in seqs]))
    batch["n_tokens"] = torch.tensor(sum(len(tok.prompt[s]) + len(tok.target[s]) for s in seqs))
    return batch


def seq_index(tok: Tokenized) -> dict[int, list[int]]:
    """Row -> indices of its sequences (prefix rows have two)."""
    out: dict[int, list[int]] = {}
    for s, r in enumerate(tok.row):
        out.setdefault(r, []).append(s)
    return out
