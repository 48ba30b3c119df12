"""Device resolution, done once per run. Imports torch only when a torch device is really asked for."""

from __future__ import annotations

from artfx.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device(name: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (case-insensitive), else ValueError naming them."""
    value = str(name).strip().lower()
    if value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit()):
        return value
    raise ValueError("auto, cpu, cuda (or cuda:N) or mps")


def resolve_device(name: str = "auto") -> str:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device that is absent is a usage error.
    Returns the device's name as torch spells it (cpu, cuda, cuda:1, mps). ``cpu`` never imports torch."""
    try:
        name = check_device(name or "auto")
    except ValueError as exc:
        raise UsageError(f"unknown device {name!r}: use {exc}") from None
    if name == "cpu":
        return "cpu"
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name} was asked for but no CUDA GPU is available",
                             hint="use --device auto or cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name} was asked for but this machine has {torch.cuda.device_count()} "
                             "CUDA GPU(s)", hint="use --device cuda:0 or auto")
    if name == "mps" and not has_mps:
        raise UsageError("device mps was asked for but Apple MPS is not available", hint="use --device auto or cpu")
    return name

