"""`precision: auto | bf16 | fp32`: what auto chooses from the CPU's own feature flags (faked
here, so both answers are tested on any machine), what each choice does to a forward pass, and
a training run that continues in another precision than it started in."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import yaml

from esgar.device import PRECISIONS, bf16_available, cpu_bf16_features, resolve_precision
from esgar.errors import ConfigError
from pipeline.params.base import load
from pipeline.params.model import TrainParams
from tests.helpers import REPO, set_params
from tests.test_training import Interrupted, fit, interrupt_after, weights

CPU = torch.device("cpu")
# what torch.cpu.get_capabilities() says on three kinds of x86 CPU
AMD_AVX2 = {"architecture": "x86_64", "cpu_name": "AMD EPYC", "avx2": True}
INTEL_AMX = {"architecture": "x86_64", "cpu_name": "Intel Xeon Platinum", "avx2": True,
             "avx512_f": True, "avx512_bf16": True, "amx_bf16": True, "amx_tile": True}
AVX512_NO_BF16 = {"architecture": "x86_64", "cpu_name": "Intel Xeon Gold", "avx2": True,
                  "avx512_f": True, "avx512_bw": True, "avx512_bf16": False}


def test_auto_is_fp32_where_the_cpu_has_no_bf16_instructions():
    for caps in (AMD_AVX2, AVX512_NO_BF16, {}):
        p = resolve_precision("auto", CPU, caps)
        assert (p.used, p.bf16, p.channels_last) == ("fp32", False, True)
        assert "no AMX or AVX-512 BF16" in p.hardware
    assert not bf16_available(CPU, AVX512_NO_BF16)  # AVX-512 alone emulates bf16: slower


def test_auto_is_bf16_where_the_cpu_has_amx_or_avx512_bf16():
    p = resolve_precision("auto", CPU, INTEL_AMX)
    assert (p.used, p.channels_last) == ("bf16", True)
    assert p.hardware == "Intel Xeon Platinum (amx_bf16, avx512_bf16)"
    assert p.record() == {"asked": "auto", "used": "bf16", "channels_last": True,
                          "hardware": "Intel Xeon Platinum (amx_bf16, avx512_bf16)"}
    assert p.tags()["precision.used"] == "bf16" and p.tags()["precision.channels_last"] == "true"
    only_avx512_bf16 = {**AMD_AVX2, "cpu_name": "AMD EPYC 9004", "avx512_bf16": True}
    assert resolve_precision("auto", CPU, only_avx512_bf16).used == "bf16"  # Zen 4 has it
    assert cpu_bf16_features(INTEL_AMX) == ["amx_bf16", "avx512_bf16"]


def test_this_machine_is_judged_by_its_own_flags():
    flags = torch.cpu.get_capabilities()
    has = bool(flags.get("amx_bf16") or flags.get("avx512_bf16"))
    assert resolve_precision("auto", CPU).used == ("bf16" if has else "fp32")


def test_an_explicit_choice_is_kept_and_emulated_bf16_is_warned_about(caplog):
    assert resolve_precision("fp32", CPU, INTEL_AMX).used == "fp32"
    with caplog.at_level(logging.WARNING, logger="esgar.device"):
        p = resolve_precision("bf16", CPU, {**AMD_AVX2, "cpu_name": "AMD EPYC test"})
    assert p.used == "bf16"
    assert "emulated, expect it slower than fp32" in caplog.text and "AMD EPYC test" in caplog.text
    with pytest.raises(ConfigError, match="precision 'fp16': use auto, bf16, fp32"):
        resolve_precision("fp16", CPU)
    assert PRECISIONS == ("auto", "bf16", "fp32")


def test_bf16_runs_the_forward_pass_in_bf16_and_fp32_does_not():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        p = resolve_precision(name, CPU, INTEL_AMX)
        net = p.prepare(torch.nn.Conv2d(3, 4, 3).requires_grad_(False))
        net.load_state_dict(conv.state_dict())
        with p.autocast():
            y = net(p.images(x))
        assert y.dtype == dtype
        assert p.images(x).is_contiguous(memory_format=torch.channels_last)
        assert net.weight.is_contiguous(memory_format=torch.channels_last)
        assert net.weight.dtype == torch.float32  # weights stay fp32 in both


def test_amp_of_an_older_params_file_is_one_clear_line(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    set_params(params, train={"precision": "fp16"})
    with pytest.raises(ConfigError) as e:
        load(params, train=TrainParams)
    assert str(e.value).count("\n") == 1 and "train.precision" in str(e.value)
    assert "'fp16' is not one of auto, bf16, fp32" in str(e.value)

    data = yaml.safe_load(params.read_text())
    data["train"].pop("precision")
    data["train"]["amp"] = True
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load(params, train=TrainParams)
    assert str(e.value).count("\n") == 1
    assert "amp was replaced by precision: auto" in str(e.value)


def test_a_run_interrupted_in_fp32_continues_in_bf16_and_says_so(tmp_path, caplog):
    """Weights and optimiser state are fp32 in both precisions, so the checkpoint carries over;
    the log says the run mixes them. (bf16 here is emulated where the CPU lacks it: slow, so the
    toy run is small.)"""
    with pytest.raises(Interrupted):
        fit(tmp_path / "run", epochs=2, on_epoch=interrupt_after(1), precision="fp32")
    with caplog.at_level(logging.INFO, logger="esgar.training"):
        _, result = fit(tmp_path / "run", epochs=2, precision="bf16")
    assert "resuming after epoch 1" in caplog.text
    assert "the first 1 epochs computed in fp32, the rest compute in bf16" in caplog.text
    assert result.epochs_run == 2 and len(result.history) == 2
    assert result.precision["used"] == "bf16"
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["precision"] == "bf16"


def test_bf16_training_is_seeded_and_repeatable_and_differs_from_fp32(tmp_path):
    a, _ = fit(tmp_path / "a", epochs=1, precision="bf16")
    b, _ = fit(tmp_path / "b", epochs=1, precision="bf16")
    c, _ = fit(tmp_path / "c", epochs=1, precision="fp32")
    assert np.array_equal(weights(a), weights(b))
    assert not np.allclose(weights(a), weights(c), atol=1e-6)
