"""Fusion head: one small classifier over the features of several backbones ("branches").

Concatenating every branch into one vector lets thousands of uninformative dimensions (a
random-weight ResNet, say) drown the few informative ones. So each branch gets its own
standardisation (mean/std fitted on the training set, stored as buffers in the state dict) and
its own projection to ``proj_dim``, whole branches are dropped at random during training so that
no branch can dominate, and the branches are then combined in one of three ways:

- ``projection``: concatenated projections -> MLP -> one logit;
- ``late``: one logit per branch, averaged with learned softmax weights;
- ``stacking``: one logit per branch, combined by a linear layer (logistic stacking).

For ``late`` and ``stacking`` the training loop fits the two levels as stacking does: each
branch's logit is fitted to the labels on its own on most training rows, and the fusion weights
are fitted on the rest (``stack_fraction``), where the branch logits are out of sample. Fitted on
the same rows, a branch that merely memorises them (500 noise dims, 600 rows) looks perfect and
gets the largest weight.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

# A standard deviation below this marks a constant feature; it is left unscaled.
_MIN_STD = 1e-6


class FusionConfig(BaseModel):
    """Shape and regularisation of the fusion head.

    Attributes:
        mode: How branches are combined: ``projection``, ``late`` or ``stacking``.
        proj_dim: Width of each branch's projection.
        hidden_dim: Width of the MLP hidden layer (``projection`` mode).
        dropout: Dropout after each projection and in the MLP, in [0, 1).
        branch_dropout: Probability of dropping a whole branch for a training sample, in [0, 1).
        stack_fraction: ``late``/``stacking``: share of training rows held out from the
            branch heads, on which the fusion weights are fitted, in (0, 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["projection", "late", "stacking"] = "projection"
    proj_dim: int = Field(64, ge=1)
    hidden_dim: int = Field(128, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    branch_dropout: float = Field(0.1, ge=0, lt=1)
    stack_fraction: float = Field(0.2, gt=0, lt=1)


class BranchEncoder(nn.Module):
    """Standardise one branch's features, then Linear -> GELU -> Dropout."""

    def __init__(self, dim: int, proj_dim: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.proj = nn.Linear(dim, proj_dim)
        self.act = nn.GELU()
        self.drop = nn.Dropout(dropout)

    @torch.no_grad()
    def fit_normalization(self, x: Tensor) -> None:
        """Set the standardisation buffers from training features ``x`` of shape [N, dim]."""
        var, mean = torch.var_mean(x.float(), dim=0, correction=0)
        std = var.sqrt()
        std = torch.where(std < _MIN_STD, torch.ones_like(std), std)
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.act(self.proj((x - self.mean) / self.std)))


class FusionHead(nn.Module):
    """Per-branch normalisation and projection, fused into one fake logit per row.

    Args:
        branch_dims: Feature width per branch, in the order branches are combined.
        config: Fusion mode and sizes.
    """

    def __init__(self, branch_dims: dict[str, int], config: FusionConfig) -> None:
        super().__init__()
        if not branch_dims:
            raise ValueError("FusionHead needs at least one branch; branch_dims is empty")
        for name, dim in branch_dims.items():
            if not name or "." in name:
                raise ValueError(f"branch name {name!r} must be non-empty and contain no '.'")
            if int(dim) < 1:
                raise ValueError(f"branch {name!r} has feature dim {dim}; it must be >= 1")
        self.config = config
        self.branch_dims = {name: int(dim) for name, dim in branch_dims.items()}
        self.branch_names = list(self.branch_dims)
        n, p = len(self.branch_names), config.proj_dim

        self.encoders = nn.ModuleDict(
            {name: BranchEncoder(dim, p, config.dropout) for name, dim in self.branch_dims.items()}
        )
        if config.mode == "projection":
            self.mlp = nn.Sequential(
                nn.Linear(n * p, config.hidden_dim),
                nn.GELU(),
                nn.Dropout(config.dropout),
                nn.Linear(config.hidden_dim, 1),
            )
        else:
            self.branch_heads = nn.ModuleDict({name: nn.Linear(p, 1) for name in self.branch_names})
            if config.mode == "late":
                self.fusion_logits = nn.Parameter(torch.zeros(n))  # softmax -> uniform at start
            else:
                self.stacker = nn.Linear(n, 1)
                with torch.no_grad():  # start as the plain average of branch logits
                    self.stacker.weight.fill_(1.0 / n)
                    self.stacker.bias.zero_()

    def fit_normalization(self, features: dict[str, Tensor]) -> None:
        """Fit each branch's standardisation (mean/std buffers) on training features.

        Args:
            features: Training features per branch, each of shape [N, dim].
        """
        for name in self.branch_names:
            self.encoders[name].fit_normalization(self._branch_input(features, name))

    def forward(self, features: dict[str, Tensor]) -> Tensor:
        """Fused fake logits of shape [B]; extra keys in ``features`` are ignored."""
        return self.forward_with_branch_logits(features)[0]

    def forward_with_branch_logits(
        self, features: dict[str, Tensor], *, detach_branches: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Fused logits [B] and, for ``late``/``stacking``, the branch logits [B, n_branches].

        Args:
            features: Features per branch, each [B, dim].
            detach_branches: Fuse detached branch logits, so that a loss on the fused logits
                trains only the fusion weights (``late``/``stacking``).
        """
        projections = [self.encoders[n](self._branch_input(features, n)) for n in self.branch_names]
        keep = self._branch_keep_mask(projections[0].shape[0], projections[0].device)
        mode = self.config.mode

        if mode == "projection":
            if keep is not None:  # inverted dropout over whole branches keeps the scale
                scale = keep * (len(projections) / keep.sum(dim=1, keepdim=True))
                projections = [h * scale[:, i : i + 1] for i, h in enumerate(projections)]
            return self.mlp(torch.cat(projections, dim=1)).squeeze(-1), None

        branch_logits = torch.cat(
            [self.branch_heads[n](h) for n, h in zip(self.branch_names, projections, strict=True)],
            dim=1,
        )
        to_fuse = branch_logits.detach() if detach_branches else branch_logits
        if mode == "late":
            weights = self.fusion_logits.expand_as(to_fuse)
            if keep is not None:  # a dropped branch leaves the average
                weights = weights.masked_fill(keep == 0, float("-inf"))
            fused = (F.softmax(weights, dim=1) * to_fuse).sum(dim=1)
        else:
            stacked = to_fuse if keep is None else to_fuse * keep  # 0 = no evidence
            fused = self.stacker(stacked).squeeze(-1)
        return fused, branch_logits

    def fusion_parameters(self) -> list[nn.Parameter]:
        """The parameters that combine branch logits (empty in ``projection`` mode)."""
        if self.config.mode == "late":
            return [self.fusion_logits]
        if self.config.mode == "stacking":
            return list(self.stacker.parameters())
        return []

    @torch.no_grad()
    def branch_weights(self) -> dict[str, float]:
        """Relative importance of each branch, non-negative and summing to 1.

        ``late``: the softmax fusion weights. ``stacking``: absolute stacking coefficients,
        normalised. ``projection``: the norm of the first MLP layer's weights over each
        branch's slice of the input, normalised.
        """
        mode = self.config.mode
        if mode == "late":
            raw = F.softmax(self.fusion_logits, dim=0)
        elif mode == "stacking":
            raw = self.stacker.weight[0].abs()
        else:
            first = self.mlp[0].weight  # [hidden, n * proj_dim]
            raw = torch.stack([s.norm() for s in first.split(self.config.proj_dim, dim=1)])
        total = raw.sum()
        raw = raw / total if total > 0 else torch.full_like(raw, 1.0 / raw.numel())
        return {name: float(w) for name, w in zip(self.branch_names, raw.tolist(), strict=True)}

    def _branch_input(self, features: dict[str, Tensor], name: str) -> Tensor:
        if name not in features:
            raise ValueError(
                f"features lack branch {name!r}; the fusion head needs {self.branch_names}, "
                f"got {sorted(features)}"
            )
        x = features[name]
        if x.ndim != 2 or x.shape[1] != self.branch_dims[name]:
            raise ValueError(
                f"branch {name!r} features have shape {tuple(x.shape)}; "
                f"expected [rows, {self.branch_dims[name]}]"
            )
        return x

    def _branch_keep_mask(self, batch: int, device: torch.device) -> Tensor | None:
        """A [B, n] 0/1 mask of the branches each training sample keeps (at least one)."""
        p, n = self.config.branch_dropout, len(self.branch_names)
        if not self.training or p == 0 or n == 1:
            return None
        keep = (torch.rand(batch, n, device=device) >= p).float()
        # Rows that dropped every branch get one random branch back.
        none_kept = (keep.sum(dim=1, keepdim=True) == 0).float()
        revive = F.one_hot(torch.randint(n, (batch,), device=device), n).float()
        return torch.maximum(keep, revive * none_kept)
