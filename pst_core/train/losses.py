"""Pure loss functions on tensors: next-token terms, pooling and the semantic losses of PST.

Shapes: `N` target tokens gathered from a batch, `B` sequences, `T` positions, `H` student hidden
size, `D` sentence-encoder size. Nothing here touches a model; strategies combine these terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported inside the functions so importing strategies stays cheap
    import torch

# Role of each target token (what its next-token loss belongs to); 0 marks prompt and padding.
NONE, ANSWER, RATIONALE = 0, 1, 2


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy [N] of logits [N, V] against token ids [N], computed in fp32."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.float(), targets, reduction="none")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is true; an empty mask gives a graph-connected 0 (not NaN)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def role_mask(roles: torch.Tensor, *which: int) -> torch.Tensor:
    """Target tokens whose role is in `which` (every target when none given).

    Built from comparisons, not `torch.isin` on a fresh tensor, so no host-to-device copy (a
    stream sync on GPU) happens per step.
    """
    if not which:
        return roles != NONE
    mask = roles == which[0]
    for w in which[1:]:
        mask = mask | (roles == w)
    return mask


def ntp(ce: torch.Tensor, roles: torch.Tensor, *which: int, rows: torch.Tensor | None = None, n_rows: int = 0) -> torch.Tensor:
    """NTP over the target tokens whose role is in `which` (all targets when none given).

    With `rows` (the sequence of each token) and `n_rows`: the per-sequence mean CE, averaged over
    the sequences that have such tokens — NTP(t | c) of ../shared/PST.md is a mean over one
    example's target tokens, so a long rationale does not outweigh a short one. Without: the mean
    over all such tokens of the batch (Hugging Face's pooled token mean).
    """
    mask = role_mask(roles, *which)
    if rows is None:
        return masked_mean(ce, mask)
    m = mask.to(ce.dtype)
    sums = ce.new_zeros(n_rows).index_add(0, rows, ce * m)
    counts = ce.new_zeros(n_rows).index_add(0, rows, m)
    present = (counts > 0).to(ce.dtype)
    return (sums / counts.clamp(min=1.0)).sum() / present.sum().clamp(min=1.0)


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over positions: hidden [B, T, H], mask [B, T] -> [B, H] (one-hot mask = gather)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _row_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-row values [B] over the valid rows (all rows when `valid` is None)."""
    return values.mean() if valid is None else masked_mean(values, valid)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the (valid) rows of 1 - cos(pred, target); pred [B, D], target [B, D], valid [B] bool."""
    import torch.nn.functional as F

    return _row_mean(1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1), valid)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Element-mean squared error between L2-normalised vectors (= (2 - 2 cos) / D per row)."""
    import torch.nn.functional as F

    err = (F.normalize(pred.float(), dim=-1) - F.normalize(target.float(), dim=-1)).pow(2).mean(-1)
    return _row_mean(err, valid)


def infonce_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch contrastive loss: row i's positive is target i, the other rationales are negatives.

    A column whose target equals row i's (the same rationale twice in a batch: a question's twin,
    or a repeated sample) is not a negative of row i, so it is left out of its softmax; invalid
    rows (no SEM state, see `sem_loss`) are neither anchors nor negatives.
    """
    import torch
    import torch.nn.functional as F

    t = target.float()
    sims = F.normalize(pred.float(), dim=-1) @ F.normalize(t, dim=-1).T / temperature
    eye = torch.eye(len(sims), dtype=torch.bool, device=sims.device)
    excluded = (t[:, None, :] == t[None, :, :]).all(-1) & ~eye
    if valid is not None:
        excluded = excluded | (~valid[None, :] & ~eye)  # the diagonal stays: no row is all -inf
    sims = sims.masked_fill(excluded, float("-inf"))
    ce = F.cross_entropy(sims, torch.arange(len(sims), device=sims.device), reduction="none")
    return _row_mean(ce, valid)


def sem_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "cosine", temperature: float = 0.05,
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """The semantic loss `kind` (cosine | mse | infonce) between head outputs and encoder embeddings.

    `valid` [B] marks rows whose pooled state exists (a sequence cut before its SEM has none).
    """
    if kind == "cosine":
        return cosine_loss(pred, target, valid)
    if kind == "mse":
        return mse_loss(pred, target, valid)
    if kind == "infonce":
        return infonce_loss(pred, target, temperature, valid)
    raise ValueError(f"unknown sem_loss {kind!r}")
