"""The config checks that need torch: whether this machine has the devices the trainer asks for. They run with the
schema's checks, before Lightning is imported (torch alone takes a second or two, Lightning much longer), and import
torch only for a config that asks for a GPU.
"""

from __future__ import annotations

from typing import Any

from logreg.errors import ConfigError

GPU_ACCELERATORS = ("gpu", "cuda")


def check_devices(trainer: Any) -> None:
    """Refuse a trainer config (`trainer.*`: a schema dataclass or a DictConfig) that asks for CUDA GPUs this machine
    does not have, in one line naming the key."""
    accelerator = str(trainer.accelerator)
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator}, but this machine has no CUDA GPU (torch.cuda.is_available() is "
            "False); use trainer=cpu, or trainer=ddp_cpu for several processes"
        )
    devices, available = trainer.devices, torch.cuda.device_count()
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > available:
        raise ConfigError(
            f"trainer.devices={devices}: this machine has {available} CUDA GPU{'s' if available != 1 else ''}; "
            f"use trainer.devices={available} or fewer (-1 for all)"
        )
