"""The local executor gives each worker process its GPUs, as Ray gives each task its own.

This machine has no GPU: the workers' CUDA_VISIBLE_DEVICES, which torch reads at its
first CUDA call, is what is checked.
"""

from __future__ import annotations

import os

import pytest

import populace
from populace.errors import ConfigError
from populace.executors.gpus import gpu_slots

SCRIPT = '''
import os
from pathlib import Path
from populace import Float, Trainable

space = {"x": Float(0.0, 1.0)}


class Seen(Trainable):
    def build(self, hparams, seed):
        self.total = 0.0
        folder = Path(os.environ["SEEN_GPUS"])
        (folder / str(os.getpid())).write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "-"))

    def apply(self, hparams):
        pass

    def step(self):
        self.total += 1

    def evaluate(self):
        return self.total

    def save(self, path):
        path.write_text(str(self.total))

    def load(self, path):
        self.total = float(path.read_text())
'''


@pytest.mark.parametrize("workers, per_worker, gpus, slots", [
    (2, 1, ["3", "5"], ["3", "5"]),
    (2, 2, ["0", "1", "2", "3"], ["0,1", "2,3"]),
    (4, 0.5, ["0", "1"], ["0", "0", "1", "1"]),
    (3, 0.5, ["7", "8"], ["7", "7", "8"]),
    (2, 0, [], [None, None]),
])
def test_each_worker_gets_its_own_gpus(workers, per_worker, gpus, slots):
    assert gpu_slots(workers, per_worker, gpus) == slots


@pytest.mark.parametrize("workers, per_worker, gpus, words", [
    (3, 1, ["0", "1"], "3 workers with gpus_per_worker=1 need 3 GPU(s); this machine shows 2"),
    (2, 1.5, ["0", "1", "2"], "a whole number of GPUs or a share of one"),
    (1, 1, [], "shows 0 (none)"),
])
def test_too_few_gpus_are_refused_naming_the_need(workers, per_worker, gpus, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        gpu_slots(workers, per_worker, gpus)


def test_local_worker_processes_see_their_gpus(tmp_path, monkeypatch):
    script = tmp_path / "seen.py"
    script.write_text(SCRIPT)
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("SEEN_GPUS", str(seen))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    s = populace.script.load_script(script)
    populace.run(s.trainable, s.space, store=tmp_path / "g.db", progress=False, population=4,
                 steps=4, ready_steps=2, workers=2, gpus_per_worker=1)
    workers = [p for p in seen.iterdir() if p.name != str(os.getpid())]  # not the preflight's
    assert sorted(p.read_text() for p in workers) == ["3", "5"]
