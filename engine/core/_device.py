"""The compute device of a run: one small module low in the tiers, so that deciding where to compute
does not pull the training or restoration code in. PyTorch is imported when a device is resolved.

Examples
--------
>>> resolve_device("cpu").type
'cpu'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ParameterError

if TYPE_CHECKING:
    import torch


def resolve_device(setting: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if setting == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' was asked for, but PyTorch sees no CUDA GPU")
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


#: Training data moves to a GPU when it takes at most this fraction of the GPU's free memory.
DEVICE_SHARE = 0.25


def holding_device(device: torch.device, nbytes: int, share: float = DEVICE_SHARE) -> torch.device:
    """Where to keep ``nbytes`` of training data for work on ``device``: the GPU itself when they take at
    most ``share`` of its free memory, else the host (batches then travel to the device one by one)."""
    import torch

    if device.type == "cuda" and nbytes <= share * torch.cuda.mem_get_info(device)[0]:
        return device
    return torch.device("cpu")


def to_device(a, device: torch.device) -> torch.Tensor:
    """``a`` (a NumPy array or a host tensor) on ``device``, without making the host wait for the work
    queued there. A plain ``.to("cuda")`` from ordinary (pageable) host memory waits until every kernel
    already queued on the stream has finished, so the host cannot run ahead of the GPU (a training step
    made a dozen such copies of indices and choices, an inference slab two). On CUDA the data goes
    through page-locked memory with an asynchronous copy (PyTorch keeps that memory until the copy is
    done); elsewhere it is ``torch.as_tensor(a).to(device)``, sharing a NumPy array's memory on the CPU.

    Examples
    --------
    >>> import numpy as np, torch
    >>> to_device(np.arange(3), torch.device("cpu")).tolist()
    [0, 1, 2]
    """
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
