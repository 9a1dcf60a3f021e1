"""ESG: explicitly semantic guidance (Shahed et al., IEEE SPL 2023), one branch per attribute.

For attribute a with region r(a), on the backbone's grid F flattened to tokens [B,N,C]:

    X_a   = F * M_r(a)                          the region's token grid M in [0,1], per token
    H_a   = X_a + SA(LayerNorm(X_a))            multi-head self-attention with a residual
    f_a   = pool(H_a)                           `mean` over all N tokens (the paper) or
                                                `masked_mean`: sum_n M_n H_n / sum_n M_n
    y_a   = MLP(f_a)                            Linear(C,hidden) -> ReLU -> Dropout -> Linear

Pooling is linear, and so are SA's value and output projections, so the branch pools first and
projects the pooled vectors (pool(X + W_o A W_v H) = pool(X) + W_o W_v (pool(A) H)): the same
function with N times fewer FLOPs in those two projections (hence separate `qk` and `v`
layers rather than one `qkv`). Masked-out tokens all share LayerNorm(0) = the norm's bias, so
their queries and keys are computed once (`skip_masked`; turn it off for torch.compile/export,
which dislike its data-dependent shapes). An empty mask under `masked_mean` gives a zero
descriptor, so the branch falls back to its bias (the class prior it learned).

The attention map a branch exposes is the weight each token's value has in f_a: the self-
attention matrix averaged over heads and over the pooled query tokens, [B,h,w], summing to 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from esgar.models.heads.common import (check_grids, classifier, flatten_grid, masked_mean,
                                       region_index, named_head)
from esgar.schema import Attribute

POOLINGS = ("mean", "masked_mean")


def choose_num_heads(dim: int, num_heads: int | None = None, head_dim: int = 64) -> int:
    """`num_heads` if it divides `dim` (ValueError otherwise); None: the divisor of `dim`
    closest to dim / head_dim (768 -> 12, 512 -> 8, 320 -> 5)."""
    divisors = [h for h in range(1, dim + 1) if dim % h == 0]
    if num_heads is None:
        return min(divisors, key=lambda h: (abs(h - dim / head_dim), h))
    if num_heads < 1 or dim % num_heads:
        near = sorted(divisors, key=lambda h: abs(h - num_heads))[:4]
        raise ValueError(f"num_heads={num_heads} does not divide the feature width {dim}; "
                         f"divisors near it: {sorted(near)} (or leave num_heads unset)")
    return num_heads


class ESGBranch(nn.Module):
    """One attribute's branch: masked tokens [B,N,C] (+ pooling weights [B,N]) -> logits.

    Its input is what the mask lets through, so a forward pre-hook on a branch sees exactly the
    features that attribute is allowed to use.
    """

    def __init__(self, dim: int, num_classes: int, num_heads: int, pooling: str = "mean",
                 hidden: int = 256, dropout: float = 0.5, skip_masked: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.num_heads, self.pooling, self.skip_masked = num_heads, pooling, skip_masked
        self.scale = (dim // num_heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qk = nn.Linear(dim, 2 * dim)  # queries and keys of every token
        self.v = nn.Linear(dim, dim)       # values, applied after pooling
        self.proj = nn.Linear(dim, dim)
        self.fc = classifier(dim, num_classes, hidden, dropout)

    def _qk(self, h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Queries and keys [B,N,2C] of the normed tokens h. A token the mask zeroes has
        h = LayerNorm(0) = the norm's bias, the same for all of them, so with `skip_masked`
        their projection is computed once and the GEMM runs over the other tokens only: the
        same values and gradients for a cost that follows the region's size."""
        b, n, c = h.shape
        keep = (weights != 0).flatten().nonzero().squeeze(1) if self.skip_masked else None
        if keep is None or keep.numel() == b * n:
            return self.qk(h)
        rows = self.qk(h.reshape(b * n, c).index_select(0, keep))
        masked = self.qk(self.norm.bias.unsqueeze(0))
        return masked.expand(b * n, -1).index_copy(0, keep, rows).view(b, n, 2 * c)

    def forward(self, x: torch.Tensor, weights: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: masked tokens [B,N,C]; weights: the mask [B,N] (pooling weights for masked_mean).

        Returns logits [B,K] and the weight of each token in the pooled descriptor [B,N].
        """
        b, n, c = x.shape
        heads, d = self.num_heads, c // self.num_heads
        h = self.norm(x)
        q, k = self._qk(h, weights).view(b, n, 2, heads, d).permute(2, 0, 3, 1, 4)  # [B,H,N,d]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)  # [B,H,N,N]
        if self.pooling == "mean":
            p = attn.mean(2)  # [B,H,N]: each key token's weight in f
            pooled_x, nonempty = x.mean(1), x.new_ones(b, 1)
        else:
            total = weights.sum(1, keepdim=True)
            w = weights / total.clamp_min(1e-6)
            p = torch.einsum("bn,bhnm->bhm", w, attn)
            pooled_x, nonempty = torch.einsum("bn,bnc->bc", w, x), (total > 0).to(x.dtype)
        # V and the output projection are linear: apply them to pooled vectors (exact)
        u = torch.einsum("bhm,bmc->bhc", p, h)  # per head, the attention-pooled normed tokens
        o = torch.einsum("bhc,hdc->bhd", u, self.v.weight.view(heads, d, c)).reshape(b, c)
        feat = pooled_x + F.linear(o + self.v.bias * nonempty, self.proj.weight) \
            + self.proj.bias * nonempty
        return self.fc(feat), p.mean(1)


@named_head("esg")
class ESGHead(nn.Module):
    """ESGAR's head: per attribute, the grid gated by that attribute's region -> SA -> pool -> MLP.

    in_features: C. num_heads: None picks a divisor of C near C/64 (12 for 768).
    pooling: `mean` (the paper: over all tokens) or `masked_mean` (inside the mask).
    hidden, dropout: the MLP (256, 0.5 as in ESGAR; hidden=0: a single Linear).
    skip_masked: compute masked-out tokens' queries and keys once (exact; see above).
    """

    def __init__(self, in_features: int, attributes: Sequence[Attribute],
                 region_names: Sequence[str], attribute_regions: Mapping[str, str],
                 num_heads: int | None = None, pooling: str = "mean", hidden: int = 256,
                 dropout: float = 0.5, skip_masked: bool = True):
        super().__init__()
        self.attributes = tuple(attributes)
        self.region_names = tuple(region_names)
        self.region_of = region_index(self.region_names, attribute_regions, self.attributes)
        self.num_heads = choose_num_heads(in_features, num_heads)
        self.branches = nn.ModuleDict({
            a.name: ESGBranch(in_features, a.num_classes, self.num_heads, pooling, hidden,
                              dropout, skip_masked)
            for a in self.attributes})

    @property
    def classifiers(self) -> dict[str, nn.Module]:
        """{attribute: its branch's classifier}, as the other heads expose theirs: the input of
        each is the descriptor the branch pooled from its region."""
        return {a: branch.fc for a, branch in self.branches.items()}

    def forward(self, features: torch.Tensor, grids: torch.Tensor | None,
                return_attention: bool = False):
        grids = check_grids(grids, features, self.region_names)
        h, w = features.shape[-2:]
        tokens = flatten_grid(features)  # [B,N,C]
        masks = grids.flatten(2)  # [B,R,N]
        logits, maps = {}, {}
        for a in self.attributes:
            m = masks[:, self.region_of[a.name]]
            logits[a.name], att = self.branches[a.name](tokens * m.unsqueeze(-1), m)
            maps[a.name] = att.view(-1, h, w)
        return (logits, maps) if return_attention else logits


def esg_reference_branch(branch: ESGBranch, x: torch.Tensor, weights: torch.Tensor
                         ) -> torch.Tensor:
    """The branch written literally (project every token, then pool): for tests of the
    pool-then-project shortcut. Returns logits [B,K]."""
    b, n, c = x.shape
    h = branch.norm(x)
    qkv = torch.cat([branch.qk(h), branch.v(h)], -1)
    q, k, v = qkv.view(b, n, 3, branch.num_heads, c // branch.num_heads).permute(2, 0, 3, 1, 4)
    attn = ((q @ k.transpose(-2, -1)) * branch.scale).softmax(-1)
    out = x + branch.proj((attn @ v).transpose(1, 2).reshape(b, n, c))
    feat = out.mean(1) if branch.pooling == "mean" else masked_mean(out, weights)
    return branch.fc(feat)
