"""Which devices this machine can train on, and the automatic choice."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # what torch.device accepts: cpu, cuda:0, mps
    label: str  # what a person sees


def available_devices() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", f"CPU ({os.cpu_count()} cores)")]
    if torch.cuda.is_available():
        devices += [
            DeviceInfo(f"cuda:{i}", f"cuda:{i} - {torch.cuda.get_device_name(i)}")
            for i in range(torch.cuda.device_count())
        ]
    if torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "mps - Apple GPU"))
    return devices


def device_choices() -> list[str]:
    """Values a config's `device` may take: auto, then every device present."""
    return ["auto"] + [device.name for device in available_devices()]


def resolve_device(name: str) -> torch.device:
    """auto picks the first GPU (CUDA, then MPS), else the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda:0")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
