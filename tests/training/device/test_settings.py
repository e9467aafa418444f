"""training.device.settings: ``auto`` precision, memory format and compilation, resolved per device."""

from __future__ import annotations

import pytest
import torch

from training.device.settings import DeviceSettings, resolve_device_settings


def test_auto_is_fast_on_cuda_and_plain_on_cpu():
    cuda = resolve_device_settings("cuda")
    assert (cuda.precision, cuda.channels_last, cuda.compile) == ("bf16", True, True)
    assert cuda.memory_format == torch.channels_last_3d
    cpu = resolve_device_settings(torch.device("cpu"))
    assert (cpu.precision, cpu.channels_last, cpu.compile) == ("fp32", False, False)
    assert cpu.memory_format == torch.contiguous_format
    assert resolve_device_settings("cuda:1").device_type == "cuda"


def test_inference_gets_bf16_and_channels_last_on_cuda_but_is_never_compiled_by_auto():
    cuda = resolve_device_settings("cuda", inference=True)
    assert (cuda.precision, cuda.channels_last, cuda.compile) == ("bf16", True, False)
    cpu = resolve_device_settings("cpu", inference=True)
    assert (cpu.precision, cpu.channels_last, cpu.compile) == ("fp32", False, False)


def test_explicit_values_win():
    s = resolve_device_settings("cuda", "fp32", False, False)
    assert (s.precision, s.channels_last, s.compile) == ("fp32", False, False)
    s = resolve_device_settings("cpu", "fp32", True, True)
    assert (s.channels_last, s.compile) == (True, True)
    assert resolve_device_settings("cuda", compile=True, inference=True).compile is True


def test_bad_values_and_bf16_off_cuda_are_errors_naming_the_setting():
    with pytest.raises(ValueError, match="precision bf16 .* needs a CUDA device, got 'cpu'"):
        resolve_device_settings("cpu", "bf16")
    with pytest.raises(ValueError, match="precision must be auto, fp32 or bf16, got 'fp16'"):
        resolve_device_settings("cuda", "fp16")
    with pytest.raises(ValueError, match="compile must be true, false or auto, got 'yes'"):
        resolve_device_settings("cuda", compile="yes")


def test_description_parameters_autocast_and_the_worker_check():
    cuda = resolve_device_settings("cuda")
    assert cuda.describe() == "cuda: bf16 autocast, channels_last_3d, torch.compile"
    assert cuda.params() == {
        "train.resolved.device": "cuda",
        "train.resolved.precision": "bf16",
        "train.resolved.channels_last": True,
        "train.resolved.compile": True,
    }
    cpu = DeviceSettings("cpu")
    assert cpu.describe() == "cpu: fp32, contiguous, eager"
    with cpu.autocast():
        assert not torch.is_autocast_enabled("cuda")
    cpu.check("cpu")
    with pytest.raises(RuntimeError, match="resolved for 'cuda'.* runs on 'cpu'"):
        cuda.check("cpu")
    model = cpu.place(torch.nn.Conv3d(3, 4, 1), "cpu")
    assert model.weight.is_contiguous()
    cl = DeviceSettings("cpu", channels_last=True).place(torch.nn.Conv3d(3, 4, 1), "cpu")
    assert cl.weight.is_contiguous(memory_format=torch.channels_last_3d)
