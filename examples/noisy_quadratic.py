"""The noisy quadratic model (NQM) of short-horizon bias, as a populace Trainable.

Wu, Ren, Liao and Grosse (ICLR 2018, "Understanding Short-Horizon Bias in Stochastic
Meta-Optimization") show on a noisy quadratic that the learning rate that is best for
the next few steps decays far too fast: cutting it lowers the noise floor at once, and
then the low-curvature directions crawl. PBT ranks members by their score now, so it is
greedy in the same way (issue 30); this model measures by how much, exactly.

The loss is L(x) = 1/2 sum_i h_i x_i^2 over DIMENSIONS dimensions with curvatures
h_i = 1/i, and a step of SGD sees the gradient h_i x_i plus independent noise of
variance c_i = NOISE * h_i (noise that grows with curvature, as a minibatch gradient's
does: the convention of Zhang et al. 2019, "Which algorithmic choices matter at which
batch sizes?", who use c = h; Wu et al. draw the minimum's position instead, which
gives noise of variance h_i^2 sigma_i^2). Every weight starts at 1. With heavy-ball
momentum b (v <- b v - lr g, x <- x + v; b = 0 is plain SGD) the first and second
moments of (x_i, v_i) follow a linear recursion exactly, so a member's state is those
five numbers per dimension, and its score, the expected loss 1/2 sum_i h_i E[x_i^2], is
exact and deterministic: no seed noise, no winner's curse, and a segment of 20 steps
costs about a millisecond.

    populace run examples/noisy_quadratic.py --store runs/nqm.db
    populace run examples/noisy_quadratic.py --store runs/nqm-rs.db --exploit none

`best_constant` and `best_step_decay` compute the references a schedule search should
reach: the best constant learning rate and the best "constant, then divided by 10"
schedule for a number of steps; `greedy_schedule` the schedule of a perfectly greedy
search, the trap (benchmarks/greedy.py reports all three beside PBT).
A learning rate above 2 / max h_i = 2 diverges (with momentum 0); a member whose
moments pass CAP is held there for good, so that it scores very badly but finitely and
is exploited, instead of failing on an infinite score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from populace import Float, Trainable

DIMENSIONS = 1000
CURVATURE = 1.0 / np.arange(1, DIMENSIONS + 1)  # h_i: condition number 1000
NOISE = 0.01  # gradient-noise variance c_i = NOISE * h_i
VARIANCE = NOISE * CURVATURE
START = 1.0  # every weight starts here, deterministically
# past this a member has diverged: its moments are set here and stay (a lower lr later
# cannot rescue it, as exact arithmetic, where they would be 1e400 or inf, could not):
# finite, it ranks last and is exploited instead of failing on an infinite score
CAP = 1e8
DECAY = 10.0  # the step decay divides the learning rate by this, once
CUT = 0.65  # where the best step decay for 1,600 steps cuts (best_step_decay(1600))

space = {"lr": Float(1e-3, 4.0, log=True)}  # the top twelfth of the prior diverges
# 1,600 steps, ready every 20: 80 decisions per member, where a greedy ranking shows
config = {
    "population": 16, "steps": 1600, "ready_steps": 20, "mode": "min", "score": "loss",
    "executor": "inline", "workers": 1,
}

# a state is (..., DIMENSIONS, 5): E[x], E[v], E[x^2], E[x v], E[v^2] per dimension
MEAN_X, MEAN_V, XX, XV, VV = range(5)


def initial_state() -> np.ndarray:
    """Every weight at START, no velocity, no spread."""
    state = np.zeros((DIMENSIONS, 5))
    state[:, MEAN_X] = START
    state[:, XX] = START**2
    return state


def expected_loss(state: np.ndarray) -> np.ndarray:
    """1/2 sum_i h_i E[x_i^2]: the loss averaged over the gradient noise, exactly."""
    return 0.5 * (CURVATURE * state[..., XX]).sum(axis=-1)


def sgd_step(state: np.ndarray, lr: float, momentum: float = 0.0) -> np.ndarray:
    """One step of noisy heavy-ball SGD, in moments: x' = a x + b v - lr e, v' = d x + b v
    - lr e, with a = 1 - lr h, d = -lr h, b = momentum and noise e of variance c."""
    if np.abs(state).max() >= CAP:
        return state  # diverged for good: see CAP
    a, d, b = 1.0 - lr * CURVATURE, -lr * CURVATURE, momentum
    noise = lr * lr * VARIANCE
    mx, mv, xx, xv, vv = (state[..., k] for k in range(5))
    new = np.stack([
        a * mx + b * mv,
        d * mx + b * mv,
        a * a * xx + 2 * a * b * xv + b * b * vv + noise,
        a * d * xx + (a * b + b * d) * xv + b * b * vv + noise,
        d * d * xx + 2 * b * d * xv + b * b * vv + noise,
    ], axis=-1)
    return new if np.abs(new).max() < CAP else np.full_like(new, CAP)


def advance(moments: np.ndarray, lr: np.ndarray | float, momentum: float,
            steps: int) -> np.ndarray:
    """`steps` steps at a constant lr in closed form, on the second moments alone
    (..., DIMENSIONS, 3): E[x^2], E[x v], E[v^2] (the means never enter the loss).

    The references search hundreds of learning rates over thousands of steps at once, so
    they cannot afford step by step. Without momentum E[x^2] is a geometric series; with
    momentum the three moments move by a 3x3 affine map, raised to a power. Each lr may be
    an array: the result then has its shape in front."""
    lr = np.asarray(lr, dtype=float)[..., None]  # broadcast over dimensions
    if steps == 0:
        return np.broadcast_to(moments, lr.shape + (3,)).copy()
    a, d, b = 1.0 - lr * CURVATURE, -lr * CURVATURE, momentum
    noise = lr * lr * VARIANCE
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if momentum == 0.0:
            # E[x^2] after steps - 1 steps, then one exact step for all three moments
            a2, k = a * a, steps - 1
            series = np.where(np.abs(1.0 - a2) < 1e-12, k, (1.0 - a2**k) / (1.0 - a2))
            xx = a2**k * moments[..., 0] + noise * series
            return np.stack([a2 * xx + noise, a * d * xx + noise, d * d * xx + noise], -1)
        one, zero = np.ones_like(a), np.zeros_like(a)
        rows = [
            [a * a, 2 * a * b, b * b * one, noise],
            [a * d, a * b + b * d, b * b * one, noise],
            [d * d, 2 * b * d, b * b * one, noise],
            [zero, zero, zero, one],
        ]
        power = np.linalg.matrix_power(
            np.stack([np.stack(row, axis=-1) for row in rows], axis=-2), steps)
        return (power[..., :3, :3] @ moments[..., None] + power[..., :3, 3:])[..., 0]


def schedule_loss(phases: Sequence[tuple[np.ndarray | float, int]],
                  momentum: float = 0.0) -> np.ndarray:
    """The exact expected final loss of a piecewise-constant schedule [(lr, steps), ...];
    each lr may be an array, giving one loss per entry (a grid searched at once).
    A diverged schedule gives a huge loss or inf (not held at CAP as a member is)."""
    moments = initial_state()[:, XX:]
    for lr, steps in phases:
        moments = advance(moments, lr, momentum, steps)
    with np.errstate(over="ignore", invalid="ignore"):
        loss = 0.5 * (CURVATURE * moments[..., 0]).sum(axis=-1)
    return np.where(np.isfinite(loss), loss, np.inf)


def _refine(loss_of_log_lr: Any, grid: np.ndarray, losses: np.ndarray) -> tuple[float, float]:
    """The grid's best lr, refined by a bounded scalar search between its neighbours."""
    from scipy.optimize import minimize_scalar

    i = int(np.argmin(losses))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    found = minimize_scalar(loss_of_log_lr, bounds=(lo, hi), method="bounded",
                            options={"xatol": 1e-6})
    if found.fun < losses[i]:
        return float(np.exp(found.x)), float(found.fun)
    return float(grid[i]), float(losses[i])


def lr_grid(momentum: float = 0.0) -> np.ndarray:
    """Learning rates searched by the references: log-spaced from 1e-4 up to the stability
    bound 2 (1 + momentum) / max h_i. Above it the stiffest direction grows; a schedule that
    blows up and is then rescued by its cut is exact arithmetic, but no member could follow
    it (its moments would be held at CAP) and no one would run it."""
    points = 400 if momentum == 0.0 else 100  # a matrix power per lr and dimension costs
    return np.logspace(-4, np.log10(2.0 * (1.0 + momentum) / CURVATURE.max()), points)


def best_constant(steps: int, momentum: float = 0.0) -> dict[str, float]:
    """The constant learning rate with the lowest expected loss after `steps` steps:
    what random search and a grid search can reach at best."""
    grid = lr_grid(momentum)
    losses = schedule_loss([(grid, steps)], momentum)
    lr, loss = _refine(lambda u: float(schedule_loss([(np.exp(u), steps)], momentum)),
                       grid, losses)
    return {"lr": lr, "loss": loss}


def best_step_decay(steps: int, momentum: float = 0.0,
                    fractions: Sequence[float] = tuple(np.arange(1, 20) / 20)
                    ) -> dict[str, float]:
    """The best schedule of one cut: lr for a fraction of the steps, then lr / DECAY.

    Searched over `fractions` (twentieths of the run by default) and the lr grid, the lr
    then refined at the best fraction: a simple schedule that a non-greedy search should
    at least match."""
    grid = lr_grid(momentum)
    best: dict[str, float] = {"loss": np.inf}
    for fraction in fractions:
        cut = round(fraction * steps)
        losses = schedule_loss([(grid, cut), (grid / DECAY, steps - cut)], momentum)
        if losses.min() < best["loss"]:
            best = {"fraction": float(fraction), "loss": float(losses.min()), "cut": cut}
            best_losses = losses
    cut = int(best["cut"])
    lr, loss = _refine(
        lambda u: float(schedule_loss([(np.exp(u), cut), (np.exp(u) / DECAY, steps - cut)],
                                      momentum)), grid, best_losses)
    return {"lr": lr, "fraction": best["fraction"], "loss": loss}


def greedy_schedule(steps: int, horizon: int, momentum: float = 0.0) -> dict[str, Any]:
    """The schedule of a perfectly greedy search: every `horizon` steps, the lr that gives
    the lowest loss `horizon` steps later (Wu et al.'s short-horizon optimum, on the lr
    grid). What PBT ranking by the score at each ready point tends to; its final loss and
    its lr per window."""
    grid = lr_grid(momentum)
    moments = initial_state()[:, XX:]
    lrs = []
    for start in range(0, steps, horizon):
        candidates = advance(moments, grid, momentum, min(horizon, steps - start))
        with np.errstate(over="ignore", invalid="ignore"):
            losses = 0.5 * (CURVATURE * candidates[..., 0]).sum(axis=-1)
        best = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
        moments = candidates[best]
        lrs.append(float(grid[best]))
    return {"loss": float(0.5 * (CURVATURE * moments[:, 0]).sum()), "lrs": lrs}


class NoisyQuadratic(Trainable):
    """One member: the exact moments of noisy SGD on the quadratic, its lr the hparam."""

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        self.state = initial_state()  # deterministic: the seed draws nothing
        self.apply(hparams)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        self.lr = float(hparams["lr"])
        # momentum is not in the default space; add a Float("momentum") to tune it too
        self.momentum = float(hparams.get("momentum", 0.0))

    def step(self) -> None:
        self.state = sgd_step(self.state, self.lr, self.momentum)

    def evaluate(self) -> dict[str, float]:
        return {"loss": float(expected_loss(self.state))}

    def save(self, path: Path) -> None:
        with open(path, "wb") as file:  # np.save(path) would append ".npy" to the name
            np.save(file, self.state)

    def load(self, path: Path) -> None:
        with open(path, "rb") as file:
            self.state = np.load(file)


class NoisyQuadraticCut(NoisyQuadratic):
    """A member on a fixed schedule family: its lr until CUT of the script's steps, then
    lr / DECAY. Random search over these members (exploit none) is what a population
    reaches that searches the right schedule family without ranking anyone early: the
    population-sized reference for PBT and FIRE-PBT (benchmarks/greedy.py)."""

    def step(self) -> None:
        cut = round(CUT * config["steps"])  # of the script's steps: --steps does not move it
        lr = self.lr if self.current_step < cut else self.lr / DECAY
        self.state = sgd_step(self.state, lr, self.momentum)


trainable = NoisyQuadratic  # what `populace run` trains; the Cut is for the benchmark

if __name__ == "__main__":
    for horizon in (100, 400, 1600):
        constant, decay = best_constant(horizon), best_step_decay(horizon)
        greedy = greedy_schedule(horizon, 20)
        print(f"{horizon} steps: best constant lr {constant['lr']:.4f} -> loss "
              f"{constant['loss']:.5f}; best step decay lr {decay['lr']:.4f} cut at "
              f"{decay['fraction']:.2f} -> loss {decay['loss']:.5f}; greedy every 20 steps "
              f"-> loss {greedy['loss']:.5f}")
