"""Checks the paper's example tests share (tests/paper/: translation, GAN): a
member reloaded from its checkpoint carries on exactly, and populace runs the example at a
tiny size with the strategies its config names."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import torch

import populace
from populace.script import Script
from populace.store import Result, open_store


def carries_on_bit_for_bit(member: Callable[..., object], state: tuple[str, ...],
                           folder: Path) -> None:
    """A member reloaded from a checkpoint takes the next step exactly as the original."""
    a = member()
    a.step()
    a.save(folder / "a.pt")
    a.step()
    b = member(seed=99)  # other weights and random state until it loads
    b.load(folder / "a.pt")
    b.step()
    assert b.evaluate() == a.evaluate()
    for name in state:  # networks and optimizers alike, tensor for tensor
        torch.testing.assert_close(getattr(b, name).state_dict(), getattr(a, name).state_dict(),
                                   rtol=0, atol=0, msg=name)


def run_tiny(script: Script, folder: Path) -> tuple[dict, list[Result]]:
    """The script's config run inline by 2 members for 2 steps, ready every step: the stored
    run config and results; the run's best score is checked against them."""
    result = populace.run(script.trainable, script.space, store=folder / "run.db",
                          script=script.path, progress=False,
                          **{**script.config, "population": 2, "steps": 2, "ready_steps": 1,
                             "executor": "inline"})
    with closing(open_store(folder / "run.db")) as store:
        run, results = store.config().run, store.results()
    assert len(results) == 2 * 2
    assert result.score == max(r.score for r in results if r.step == 2)
    return run, results


def before_and_after(member: Any, steps: int) -> tuple[dict, dict]:
    """A member's metrics after its first step and after `steps` more."""
    member.step()
    first = member.evaluate()
    for _ in range(steps):
        member.step()
    return first, member.evaluate()
