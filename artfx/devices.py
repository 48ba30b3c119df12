"""Device resolution, done once per run. Imports torch only when a torch device is really asked for."""

from __future__ import annotations

from artfx.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_torch_device(name: str = "auto"):
    """auto picks CUDA, then Apple MPS, then the CPU; an explicit device that is absent is a usage error."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICES and not name.startswith("cuda:"):
        raise UsageError(f"unknown device {name!r}", hint="use auto, cpu, cuda or mps")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if has_mps:
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("device cuda was asked for but no CUDA GPU is available", hint="use --device auto or cpu")
    if name == "mps" and not has_mps:
        raise UsageError("device mps was asked for but Apple MPS is not available", hint="use --device auto or cpu")
    return torch.device(name)
