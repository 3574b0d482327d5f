"""Where training runs: CUDA when present, else Apple MPS, else the CPU; or exactly what was asked."""

from __future__ import annotations

import torch


class DeviceUnavailable(ValueError):
    """The requested device cannot be used by this torch build or machine."""


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when present, else Apple MPS when it works, else CPU; or exactly what was asked, if usable."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceUnavailable(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        available.append("mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        hint = (
            "this torch build has no CUDA (install the CUDA build of the pinned torch from PyPI)"
            if torch.version.cuda is None
            else "no CUDA GPU is visible"
        )
        raise DeviceUnavailable(
            f"device {name!r} is not available: {hint}; available: {', '.join(available)}"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {name!r} is not available; available: {', '.join(available)}")
    if device.type == "mps" and "mps" not in available:
        raise DeviceUnavailable(f"device {name!r} is not available; available: {', '.join(available)}")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
