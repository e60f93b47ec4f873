"""examples/toy.py with steps that take 10 ms: its 200 steps then last 2 s a member, so
the two worker processes of a local run train together even when one of them is
descheduled for a while (the toy's own steps take microseconds: a worker stalled for
half a second on a loaded machine found the other member already done, and with no
donor left nothing was copied)."""

import importlib.util
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "populace_toy_example", Path(__file__).resolve().parents[2] / "examples" / "toy.py")
assert _spec is not None and _spec.loader is not None
toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy)

space, initial, config = toy.space, toy.initial, toy.config


class SlowToy(toy.Toy):
    def step(self):
        time.sleep(0.01)
        super().step()
