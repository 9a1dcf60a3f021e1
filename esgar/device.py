"""Which torch device to run on, and whether it computes in bfloat16."""

from __future__ import annotations

import torch

from esgar.errors import ConfigError

__all__ = ["bf16_available", "check_device", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`.

    ConfigError for a CUDA device that is not there and for names torch does not know.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device {name!r} asked for, but no CUDA device is available; "
                              "use auto or cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r}: only {count} CUDA device(s) here")
    return device


def bf16_available(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 at full speed (CUDA's check; oneDNN's on CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check_device(name: str) -> str:
    """`name` if `resolve_device` accepts it here (a validator for settings)."""
    resolve_device(name)
    return name
