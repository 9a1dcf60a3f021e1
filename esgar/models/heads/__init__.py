"""Attribute heads by name: `esg`, `ssp_ssg`, `lsa`, `global` (see `common` for the interface)."""

from esgar.models.heads.common import (
    check_head_kwargs, check_model_regions, create_head, list_heads, named_head,
)
from esgar.models.heads.esg import ESGHead
from esgar.models.heads.global_ import GlobalHead
from esgar.models.heads.lsa import LSAHead
from esgar.models.heads.ssp_ssg import SSPSSGHead

__all__ = ["ESGHead", "GlobalHead", "LSAHead", "SSPSSGHead", "check_head_kwargs",
           "check_model_regions", "create_head", "list_heads", "named_head"]
