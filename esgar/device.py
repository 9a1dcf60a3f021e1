"""Which torch device to run on, and in which precision it computes.

    device = resolve_device("auto")                 # CUDA when present, else the CPU
    prec = resolve_precision("auto", device)        # bf16 where the hardware has it, else fp32
    model = prec.prepare(model)                     # channels_last where it is faster
    with prec.autocast():                           # forward passes only; losses stay fp32
        logits = model(prec.images(x), grids)
    prec.record()                                   # what model.json and MLflow keep
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from esgar.errors import ConfigError

__all__ = ["BF16_CPU_FEATURES", "PRECISIONS", "Precision", "bf16_available", "check_device",
           "cpu_bf16_features", "resolve_device", "resolve_precision"]

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "bf16", "fp32")
# The x86 instructions that compute in bfloat16 natively; without them oneDNN emulates bf16,
# slower than fp32. Read from the CPU (torch.cpu.get_capabilities), never from its model name.
BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")


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


def cpu_bf16_features(capabilities: Mapping[str, Any] | None = None) -> list[str]:
    """Which of `BF16_CPU_FEATURES` the CPU has ([] for none). `capabilities`: a mapping like
    `torch.cpu.get_capabilities()` (feature name -> bool), which is read when it is None."""
    caps = torch.cpu.get_capabilities() if capabilities is None else capabilities
    return [f for f in BF16_CPU_FEATURES if caps.get(f) is True]


def cpu_name(capabilities: Mapping[str, Any] | None = None) -> str:
    caps = torch.cpu.get_capabilities() if capabilities is None else capabilities
    return str(caps.get("cpu_name") or caps.get("architecture") or "unknown CPU")


def bf16_available(device: torch.device, capabilities: Mapping[str, Any] | None = None
                   ) -> bool:
    """Whether `device` computes bfloat16 at full speed: CUDA's own check; on the CPU, AMX or
    AVX-512 BF16 (`capabilities` as in `cpu_bf16_features`)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_bf16_features(capabilities))


def _hardware(device: torch.device, capabilities: Mapping[str, Any] | None) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    features = cpu_bf16_features(capabilities)
    return (f"{cpu_name(capabilities)} ({', '.join(features)})" if features else
            f"{cpu_name(capabilities)} (no AMX or AVX-512 BF16)")


@dataclass(frozen=True)
class Precision:
    """How forward passes compute on one device. `asked`: the setting (auto, bf16, fp32);
    `used`: what it resolved to (bf16 or fp32); `hardware`: the device and what it offers;
    `channels_last`: images and convolution weights in NHWC. Weights, optimiser state, losses
    and metrics stay fp32 in both."""

    asked: str
    used: str
    device_type: str
    hardware: str
    channels_last: bool

    @property
    def bf16(self) -> bool:
        return self.used == "bf16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast around forward passes, or nothing."""
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` in the memory format its convolutions are fastest in (in place)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of images [B,3,H,W] in that memory format."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def record(self) -> dict[str, Any]:
        """What model.json and MLflow keep: the setting, the choice, and the hardware."""
        return {"asked": self.asked, "used": self.used, "channels_last": self.channels_last,
                "hardware": self.hardware}

    def tags(self) -> dict[str, str]:
        """The record as MLflow tags (strings)."""
        return {f"precision.{k}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in self.record().items()}

    def describe(self) -> str:
        how = "chosen by auto" if self.asked == "auto" else "as asked"
        return f"{self.used} ({how}) on {self.hardware}"


def resolve_precision(asked: str, device: torch.device,
                      capabilities: Mapping[str, Any] | None = None) -> Precision:
    """`auto`: bf16 where `bf16_available(device)`, else fp32; `bf16` and `fp32` as asked (bf16
    on a CPU without AMX or AVX-512 BF16 runs, emulated and slower than fp32, with a warning).
    `capabilities`: the CPU's, as in `cpu_bf16_features` (read when None)."""
    if asked not in PRECISIONS:
        raise ConfigError(f"precision {asked!r}: use {', '.join(PRECISIONS)}")
    native = bf16_available(device, capabilities)
    used = ("bf16" if native else "fp32") if asked == "auto" else asked
    # NHWC: oneDNN's convolutions are faster in it in both precisions (bench/bench_precision.py:
    # 1.08x to 1.17x in fp32 on an AMD EPYC, 1.11x in bf16 on an Intel Xeon), cuDNN's in bf16;
    # fp32 on CUDA, not measured, stays NCHW
    prec = Precision(asked, used, device.type, _hardware(device, capabilities),
                     channels_last=device.type == "cpu" or used == "bf16")
    if used == "bf16" and not native:
        _warn_emulated(prec.hardware)
    return prec


@functools.cache
def _warn_emulated(hardware: str) -> None:  # once per process, not once per batch
    log.warning("bf16 asked for on %s: emulated, expect it slower than fp32 (auto would "
                "choose fp32 here)", hardware)


def check_device(name: str) -> str:
    """`name` if `resolve_device` accepts it here (a validator for settings)."""
    resolve_device(name)
    return name
