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


def ntp(ce: torch.Tensor, roles: torch.Tensor, *which: int) -> torch.Tensor:
    """NTP over the target tokens whose role is in `which` (all targets when none given): mean CE."""
    import torch

    mask = roles != NONE if not which else torch.isin(roles, torch.tensor(which, device=roles.device))
    return masked_mean(ce, mask)


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over positions: hidden [B, T, H], mask [B, T] -> [B, H] (one-hot mask = gather)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 - cos(pred, target); pred [B, D], target [B, D]."""
    import torch.nn.functional as F

    return (1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1)).mean()


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-mean squared error between L2-normalised vectors (= (2 - 2 cos) / D per row)."""
    import torch.nn.functional as F

    return F.mse_loss(F.normalize(pred.float(), dim=-1), F.normalize(target.float(), dim=-1))


def infonce_loss(pred: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch contrastive loss: row i's positive is target i, the other rationales are negatives."""
    import torch
    import torch.nn.functional as F

    sims = F.normalize(pred.float(), dim=-1) @ F.normalize(target.float(), dim=-1).T / temperature
    return F.cross_entropy(sims, torch.arange(len(sims), device=sims.device))


def sem_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "cosine", temperature: float = 0.05) -> torch.Tensor:
    """The semantic loss `kind` (cosine | mse | infonce) between head outputs and encoder embeddings."""
    if kind == "cosine":
        return cosine_loss(pred, target)
    if kind == "mse":
        return mse_loss(pred, target)
    if kind == "infonce":
        return infonce_loss(pred, target, temperature)
    raise ValueError(f"unknown sem_loss {kind!r}")
