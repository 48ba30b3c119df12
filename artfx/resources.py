"""Memory, estimated before heavy work: a run that would not fit is refused in one line naming the parameter,
instead of dying later with a MemoryError (or torch's raw "can't allocate memory") after minutes of work.

A stage may say what it needs through its optional ``memory`` hook and what size it returns through
``out_shape`` (both declared on :class:`artfx.stage.StageHooks`); a stage without the hook is assumed to hold a
few float32 copies of its image (``DEFAULT_COPIES``). The work unit (:mod:`artfx.jobs.render`) calls
:func:`check` for every picture of every job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from artfx.errors import UsageError
from artfx.stage import hook

DEFAULT_COPIES = 6  # float32 RGB images a plain stage holds at once (input, output, a few temporaries)
HEADROOM = 0.9  # use at most this share of what is available


@dataclass
class Need:
    """Peak bytes a step needs in host memory and on its device (CUDA/MPS), and what drives it (a parameter,
    e.g. "output_size=32768", named in the message when it does not fit)."""

    host: int = 0
    device: int = 0
    why: str = ""


def image_bytes(shape: tuple[int, int], copies: float = 1.0, channels: int = 3, itemsize: int = 4) -> int:
    return int(shape[0] * shape[1] * channels * itemsize * copies)


def available_host() -> int | None:
    """Bytes of memory the system can give now (MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_device(device: str) -> int | None:
    """Free bytes on a CUDA device (None for the CPU, MPS, or when torch cannot tell)."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    except Exception:
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def estimate(pipeline: Any, shape: tuple[int, int], device: str) -> list[tuple[str, Need]]:
    """(step label, Need) for every step, following the image size through the steps."""
    out = []
    for index, step in enumerate(pipeline.steps):
        label = f"step {index + 1} ({step.name})"
        memory = hook(step.stage, "memory")
        need = memory(step.params, shape, device) if memory else Need(host=image_bytes(shape, DEFAULT_COPIES))
        out.append((label, need))
        resize = hook(step.stage, "out_shape")
        if resize is not None:
            shape = tuple(resize(step.params, shape))
    return out


def check(pipeline: Any, shape: tuple[int, int], device: str, held: int = 0) -> None:
    """UsageError when a step's estimated peak (plus ``held``: the input and alpha the run keeps) exceeds the
    memory available; one line naming the step and what drives its need."""
    host_free = available_host()
    for label, need in estimate(pipeline, shape, device):
        host = need.host + held
        device_free = available_device(device) if need.device else None
        if need.device and device_free is not None and need.device > HEADROOM * device_free:
            raise _too_big(label, need, need.device, device_free, f"{device} memory")
        if not device.startswith(("cuda", "mps")):
            host += need.device  # on the CPU the device is the host
        if host_free is not None and host > HEADROOM * host_free:
            raise _too_big(label, need, host, host_free, "memory")


def _too_big(label: str, need: Need, amount: int, free: int, where: str) -> UsageError:
    what = f"{need.why} " if need.why else ""
    return UsageError(f"{label}: {what}needs about {gib(amount)} of {where}, and {gib(free)} is available",
                      hint=f"lower {need.why.split('=')[0] if need.why else 'the size'}, use --max-size, or pass "
                           "--allow-huge to try anyway")
