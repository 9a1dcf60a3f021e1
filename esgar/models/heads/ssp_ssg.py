"""SSP + SSG (Kalayeh, Gong, Shah, CVPR 2017), rebuilt as a head on the backbone's last grid.

Our reading of the paper (no official code exists; the formulas below are our choices):
- The paper runs an attribute network beside a face-parsing network that outputs K = 7 region
  probability maps (background, hair, face skin, eyes, brows, mouth, nose).
- SSP, Semantic Segmentation-based Pooling: instead of one global average over the last
  activations, average them inside each region (weighted by the region's probability) and
  concatenate the K region descriptors, so the classifier knows *where* an activation occurred.
- SSG, Semantic Segmentation-based Gating: the activations are multiplied by each region's
  probability map, giving K gated copies processed separately, so activations from different
  regions are not blended when they are pooled; the copies are then merged.
- SSP + SSG: both descriptors are concatenated and fed to the attribute classifiers. All
  attributes see all regions: the region-attribute link is learned, not given.

Here, with D = `dim` (a 1x1 conv C -> D + ReLU first, keeping the concatenation small), P_r the
region grids (plus a `background` channel 1 - max_r P_r unless `add_background=False`):

    SSP:  s_r = sum_t P_r(t) F(t) / max(sum_t P_r(t), eps)            -> [B, K*D]
    SSG:  G   = sum_r ReLU(W_r (P_r * F) + b_r)    W_r: a 1x1 conv per region (one grouped conv)
          g   = mean_t G(t)                                            -> [B, D]
    y_a   = MLP_a([s_1, ..., s_K, g])                one MLP per attribute (as ESG's)

In the paper gating happens inside the attribute network (before its pooling layers); the
timm backbones here are used unchanged, so gating acts on their last grid. `attribute_regions`
is not used by this head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from esgar.models.heads.common import check_grids, classifier, named_head
from esgar.schema import Attribute


@named_head("ssp_ssg")
class SSPSSGHead(nn.Module):
    """features [B,C,h,w], grids [B,R,h,w] -> {attribute: logits}.

    dim: width D of the reduced features. add_background: add 1 - max_r P_r as a region.
    hidden, dropout: the per-attribute MLP.
    """

    def __init__(self, in_features: int, attributes: Sequence[Attribute],
                 region_names: Sequence[str], attribute_regions: Mapping[str, str] | None = None,
                 dim: int = 256, add_background: bool = True, hidden: int = 256,
                 dropout: float = 0.5, eps: float = 1e-6):
        super().__init__()
        self.attributes = tuple(attributes)
        self.region_names = tuple(region_names)
        self.add_background, self.eps, self.dim = add_background, eps, dim
        k = len(self.region_names) + int(add_background)
        self.num_regions = k
        self.reduce = nn.Sequential(nn.Conv2d(in_features, dim, 1), nn.ReLU(inplace=True))
        self.gate_conv = nn.Conv2d(k * dim, k * dim, 1, groups=k)  # W_r, one group per region
        self.classifiers = nn.ModuleDict({a.name: classifier(k * dim + dim, a.num_classes, hidden,
                                                             dropout) for a in self.attributes})

    def regions(self, grids: torch.Tensor) -> torch.Tensor:
        """[B,R,h,w] -> [B,K,h,w] (with the background channel when asked)."""
        if not self.add_background:
            return grids
        background = (1 - grids.amax(1, keepdim=True)).clamp_min(0)
        return torch.cat([grids, background], 1)

    def descriptors(self, features: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        """[B, K*D + D]: SSP region descriptors, then the SSG descriptor."""
        p = self.regions(check_grids(grids, features, self.region_names))  # [B,K,h,w]
        f = self.reduce(features)  # [B,D,h,w]
        b, d = f.shape[:2]
        mass = p.flatten(2).sum(-1)  # [B,K]
        ssp = torch.einsum("bkhw,bdhw->bkd", p, f) / mass.clamp_min(self.eps).unsqueeze(-1)
        gated = (p.unsqueeze(2) * f.unsqueeze(1)).flatten(1, 2)  # [B,K*D,h,w]
        g = torch.relu(self.gate_conv(gated)).view(b, self.num_regions, d, *f.shape[-2:])
        ssg = g.sum(1).mean((2, 3))  # [B,D]
        return torch.cat([ssp.flatten(1), ssg], 1)

    def forward(self, features: torch.Tensor, grids: torch.Tensor | None,
                return_attention: bool = False):
        z = self.descriptors(features, grids)
        logits = {a.name: self.classifiers[a.name](z) for a in self.attributes}
        return (logits, {}) if return_attention else logits
