"""GPU checks that need a GPU to mean anything, each printing PASS or FAIL with what it saw
(benchmarks/gpu.sh runs them; `--device cpu` is a dry run of the same code on a CPU).

    python benchmarks/gpu_workers.py rng --device cuda       # random states across an exploit
    python benchmarks/gpu_workers.py workers --device cuda   # two local workers on one GPU

- rng: CUDA random states saved with a checkpoint and restored bit for bit, for both
  kinds of member: a vectorized run's file (`layout`: the state of every GPU in use) and
  a plain member's (`PlainMember` on the GPU), copied into another member as an exploit
  copies, after which the copy draws the same dropout masks the donor drew.
- workers: a local run with two workers and `gpus_per_worker=0.5`, members of the digits
  MLP on `device="auto"`: every member reports where it trained (`on_gpu`, the CUDA
  devices its worker saw, its process id), and nvidia-smi, polled during the run, shows
  the workers' processes on the GPU.

Nothing here reaches the network: the digits come with scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from digits_vectorized import DigitsVectorized, space  # noqa: E402

import populace  # noqa: E402
from populace.store import open_store  # noqa: E402
from populace.vectorized import layout  # noqa: E402
from populace.vectorized.plain import PlainMember  # noqa: E402

FAILED: list[str] = []


def check(name: str, ok: bool, saw: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {saw}", flush=True)
    if not ok:
        FAILED.append(name)


def _rng_now(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def _masks(device: torch.device) -> torch.Tensor:
    """Dropout masks drawn now on `device` (what a member's next step would draw)."""
    return torch.nn.functional.dropout(torch.ones(4096, device=device), 0.5).cpu()


class OnDevice(PlainMember):
    vectorized = DigitsVectorized
    device = os.environ.get("GPU_CHECK_DEVICE", "auto")

    def evaluate(self) -> dict[str, float]:
        metrics = super().evaluate()
        where = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return {**metrics, "on_gpu": float(next(self.model.parameters()).is_cuda),
                "pid": float(os.getpid()), "visible": float(len(where.split(",")) if where
                                                            else -1)}


def rng(device: torch.device) -> None:
    """Random states across an exploit, bit for bit, for both kinds of member."""
    torch.manual_seed(1)
    _masks(device)  # the GPU's generator in use, as after a few steps
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "v.ckpt"
        layout.save(path, [0], {"w": torch.zeros(1, 3)}, np.zeros(1, np.int64),
                    np.zeros(1, np.int64))
        state, after = _rng_now(device).clone(), _masks(device)
        torch.manual_seed(99)  # another member's draws in between
        _masks(device)
        layout.read(path).restore_rng()
        check("vectorized checkpoint: random state restored bit for bit",
              torch.equal(_rng_now(device), state), f"{state.numel()} bytes of {device}")
        check("vectorized checkpoint: the same dropout masks after the restore",
              torch.equal(_masks(device), after), "4,096 draws")

        hparams = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "dropout": 0.3}
        donor, copy = OnDevice(), OnDevice()
        donor.build(hparams, seed=5)
        donor.step()
        donor.save(Path(folder) / "donor.ckpt")
        state, after = _rng_now(device).clone(), _masks(device)
        copy.build(hparams, seed=6)
        copy.step()  # its own draws, then the exploit: it loads the donor's checkpoint
        copy.load(Path(folder) / "donor.ckpt")
        check("plain member: the copy's random state is the donor's, bit for bit",
              torch.equal(_rng_now(device), state),
              f"model on {next(copy.model.parameters()).device}")
        check("plain member: the copy draws the donor's dropout masks",
              torch.equal(_masks(device), after), "4,096 draws")


def _gpu_processes(seen: set[int], stop: threading.Event) -> None:
    """Poll nvidia-smi for the processes on the GPU until `stop`."""
    while not stop.is_set():
        done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True)
        for line in done.stdout.splitlines():
            if line.strip():
                seen.add(int(line.split(",")[0]))
        time.sleep(0.5)


def workers(device: torch.device) -> None:
    """A local run of two workers sharing one GPU (0.5 each), seen on it."""
    share = 0.5 if device.type == "cuda" else 0.0
    os.environ["GPU_CHECK_DEVICE"] = "auto" if device.type == "cuda" else "cpu"
    seen: set[int] = set()
    stop = threading.Event()
    poll = shutil.which("nvidia-smi") and device.type == "cuda"
    poller = threading.Thread(target=_gpu_processes, args=(seen, stop), daemon=True)
    if poll:
        poller.start()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = populace.run(OnDevice, space, store=str(Path(folder) / "run.db"),
                              executor="local", workers=2, gpus_per_worker=share,
                              population=4, steps=64, ready_steps=16, score="accuracy",
                              seed=0, progress=False)
        wall = time.perf_counter() - started
        stop.set()
        results = open_store(str(Path(folder) / "run.db")).results()
    pids = {int(r.metrics["pid"]) for r in results}
    want = 1.0 if device.type == "cuda" else 0.0
    check("local run: every member trained on the device",
          all(r.metrics["on_gpu"] == want for r in results),
          f"{len(results)} results, on_gpu {sorted({r.metrics['on_gpu'] for r in results})}, "
          f"best {result.best.score:.3f}, {wall:.1f} s")
    check("local run: two worker processes trained", len(pids) == 2, f"pids {sorted(pids)}")
    if device.type == "cuda":
        check("local run: each worker saw one GPU (CUDA_VISIBLE_DEVICES)",
              {r.metrics["visible"] for r in results} == {1.0},
              f"devices seen {sorted({r.metrics['visible'] for r in results})}")
        if poll:
            check("nvidia-smi: the workers' processes on the GPU", pids <= seen,
                  f"workers {sorted(pids)}, on the GPU {sorted(seen)}")
        else:
            check("nvidia-smi: the workers' processes on the GPU", False, "no nvidia-smi")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["rng", "workers"])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: give --device cpu for a dry run")
    {"rng": rng, "workers": workers}[args.check](device)
    if FAILED:
        raise SystemExit(f"{len(FAILED)} check(s) failed: {', '.join(FAILED)}")


if __name__ == "__main__":
    main()
