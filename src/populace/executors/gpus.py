"""Which GPUs each local worker process sees, as the Ray executor gives each task its own."""

from __future__ import annotations

import math
import os

from populace.errors import ConfigError


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else those torch
    counts (torch is imported only when a run asks for GPUs)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    try:
        import torch
    except ModuleNotFoundError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(workers: int, per_worker: float, gpus: list[str]) -> list[str | None]:
    """Each worker's CUDA_VISIBLE_DEVICES: `per_worker` whole GPUs of its own, or (below
    1) a share of one GPU with 1/per_worker - 1 other workers; None: leave it as is."""
    if per_worker == 0:
        return [None] * workers
    if per_worker >= 1 and per_worker != int(per_worker):
        raise ConfigError(f"gpus_per_worker must be a whole number of GPUs or a share of one "
                          f"(0.5, 0.25...), got {per_worker:g}")
    each, share = (int(per_worker), 1) if per_worker >= 1 else (1, round(1 / per_worker))
    needed = math.ceil(workers / share) * each
    if needed > len(gpus):
        raise ConfigError(
            f"{workers} workers with gpus_per_worker={per_worker:g} need {needed} GPU(s); "
            f"this machine shows {len(gpus)} ({', '.join(gpus) or 'none'}): lower --workers "
            "or --gpus-per-worker")
    # worker i: the i-th block of `each` GPUs, or with `share` workers to a GPU, GPU i//share
    return [",".join(gpus[(i // share) * each:(i // share + 1) * each]) for i in range(workers)]
