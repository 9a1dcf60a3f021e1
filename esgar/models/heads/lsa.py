"""LSA: language-driven spatial-semantic cross-attention (Kim, Bak, Lee, IEEE TNNLS 2024).

Only the paper's abstract is public: a correlation dictionary (similarity of text embeddings of
attribute names and facial-region names) is turned into a cross-attention (attributes as
queries, spatial features as keys) and combined with learned scaled-dot-product attention
through balancing parameters. The exact formulas are ours:

    D [A,R]      cosine similarity of all-MiniLM-L6-v2 embeddings of attribute and region texts
                 (`esgar/models/lsa_dictionary.json`, made offline by
                 `scripts/make_lsa_dictionary.py`; columns picked by region name)
    w_a,r        = softmax_r(D[a,r] / tau)                        which regions attribute a uses
    U_r(n)       = M_r(n) / sum_n' M_r(n')                        uniform inside region r
    P_a(n)       = sum_r w_a,r U_r(n) / sum_r w_a,r [M_r != 0]    language prior over tokens n
                   (uniform 1/N when every region is empty for that sample)
    L_a,h(n)     = softmax_n(q_a,h . k_h(n) / sqrt(d_h))          learned attention, head h
                   q_a: a learned embedding per attribute; k, v = W_k, W_v LayerNorm(F)
    A_a,h(n)     = beta_a P_a(n) + (1 - beta_a) L_a,h(n),   beta_a = sigmoid(lambda_a)
                   (lambda_a learned, initialised to `prior_logit`, 0 -> beta = 0.5)
    z_a          = W_o concat_h(sum_n A_a,h(n) v_h(n)) + b_o
    y_a          = MLP_a(z_a)

P and L are both distributions over tokens, so A is one too. The attention map exposed for
attribute a is A_a averaged over heads, [B,h,w]. `attribute_regions` is not used by this head:
the dictionary links attributes to all regions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from esgar.errors import ConfigError
from esgar.models.heads.common import check_grids, classifier, flatten_grid, named_head
from esgar.models.heads.esg import choose_num_heads
from esgar.schema import Attribute

DEFAULT_DICTIONARY = Path(__file__).resolve().parents[1] / "lsa_dictionary.json"


def load_dictionary(attributes: Sequence[str], regions: Sequence[str],
                    path: str | Path | None = None) -> torch.Tensor:
    """The [A,R] correlation dictionary for these attributes and regions, in this order."""
    path = Path(path) if path is not None else DEFAULT_DICTIONARY
    d = json.loads(path.read_text())
    missing_a = [a for a in attributes if a not in d["attributes"]]
    missing_r = [r for r in regions if r not in d["regions"]]
    if missing_a or missing_r:
        raise ConfigError(f"{path}: the LSA dictionary has no entry for "
                          f"{', '.join(missing_a + missing_r)} (it has attributes "
                          f"{', '.join(d['attributes'])}; regions {', '.join(d['regions'])}); "
                          "remake it with scripts/make_lsa_dictionary.py --regions ...")
    m = torch.tensor(d["matrix"], dtype=torch.float32)
    rows = [d["attributes"].index(a) for a in attributes]
    cols = [d["regions"].index(r) for r in regions]
    return m[rows][:, cols]


def language_prior(region_weights: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """P [B,A,N]: region_weights w [A,R] (rows sum to 1), grids M [B,R,N] in [0,1]."""
    mass = grids.sum(-1)  # [B,R]
    uniform_in_region = grids / mass.clamp_min(1e-6).unsqueeze(-1)  # U_r, 0 for empty regions
    present = (mass > 0).to(grids.dtype)
    num = torch.einsum("ar,brn->ban", region_weights, uniform_in_region)
    den = torch.einsum("ar,br->ba", region_weights, present).unsqueeze(-1)
    fallback = torch.full_like(num, 1.0 / grids.shape[-1])
    return torch.where(den > 0, num / den.clamp_min(1e-12), fallback)


@named_head("lsa")
class LSAHead(nn.Module):
    """features [B,C,h,w], grids [B,R,h,w] -> {attribute: logits}.

    tau: temperature of the softmax over regions. num_heads: None picks a divisor of C near
    C/64. prior_logit: initial lambda (beta = sigmoid(lambda)). dictionary: a JSON file like
    `lsa_dictionary.json` (default: the packaged one). hidden, dropout: the per-attribute MLP.
    """

    def __init__(self, in_features: int, attributes: Sequence[Attribute],
                 region_names: Sequence[str], attribute_regions: Mapping[str, str] | None = None,
                 tau: float = 0.1, num_heads: int | None = None, prior_logit: float = 0.0,
                 dictionary: str | Path | None = None, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.attributes = tuple(attributes)
        self.region_names = tuple(region_names)
        c, a = in_features, len(self.attributes)
        self.num_heads = choose_num_heads(c, num_heads)
        self.scale = (c // self.num_heads) ** -0.5
        corr = load_dictionary([x.name for x in self.attributes], self.region_names, dictionary)
        self.register_buffer("correlation", corr)  # D [A,R]
        self.register_buffer("region_weights", (corr / tau).softmax(-1))  # w [A,R]
        self.queries = nn.Parameter(torch.randn(a, c) * 0.02)
        self.balance_logit = nn.Parameter(torch.full((a,), float(prior_logit)))
        self.norm = nn.LayerNorm(c)
        self.kv = nn.Linear(c, 2 * c)
        self.proj = nn.Linear(c, c)
        self.classifiers = nn.ModuleDict({x.name: classifier(c, x.num_classes, hidden, dropout)
                                          for x in self.attributes})

    @property
    def balance(self) -> torch.Tensor:
        """beta [A]: the weight of the language prior in each attribute's attention."""
        return torch.sigmoid(self.balance_logit)

    def attention(self, features: torch.Tensor, grids: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Combined attention A [B,A,H,N] and values v [B,H,N,d]."""
        grids = check_grids(grids, features, self.region_names)
        tokens = self.norm(flatten_grid(features))  # [B,N,C]
        b, n, c = tokens.shape
        kv = self.kv(tokens).view(b, n, 2, self.num_heads, c // self.num_heads)
        k, v = kv.permute(2, 0, 3, 1, 4)  # [B,H,N,d] each
        q = self.queries.view(-1, self.num_heads, c // self.num_heads)  # [A,H,d]
        learned = (torch.einsum("ahd,bhnd->bahn", q, k) * self.scale).softmax(-1)
        prior = language_prior(self.region_weights.to(tokens.dtype), grids.flatten(2))
        beta = self.balance.to(tokens.dtype).view(1, -1, 1, 1)
        return beta * prior.unsqueeze(2) + (1 - beta) * learned, v

    def forward(self, features: torch.Tensor, grids: torch.Tensor | None,
                return_attention: bool = False):
        attn, v = self.attention(features, grids)
        b, a, heads = attn.shape[:3]
        z = self.proj(torch.einsum("bahn,bhnd->bahd", attn, v).reshape(b, a, -1))  # [B,A,C]
        logits = {x.name: self.classifiers[x.name](z[:, i]) for i, x in enumerate(self.attributes)}
        if not return_attention:
            return logits
        h, w = features.shape[-2:]
        maps = {x.name: attn[:, i].mean(1).view(b, h, w) for i, x in enumerate(self.attributes)}
        return logits, maps
