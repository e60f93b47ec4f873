"""PB2's model: a time-varying Gaussian process of the score's improvement, and where its
upper confidence bound is highest (Parker-Holder et al. 2020, section 3).

Built from scikit-learn's kernels (the `pb2` extra): imported only when PB2 explores.
Inputs are rows [time, context..., hparams...], every column scaled to [0, 1].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    Hyperparameter,
    Kernel,
    Matern,
    WhiteKernel,
)
from threadpoolctl import threadpool_limits

# The paper's time kernel (1 - eps)^(|t - t'| / 2), eps in (0, 0.5], is Matern's nu = 1/2
# kernel exp(-|t - t'| / l) with l = 2 / -ln(1 - eps): from 2.885 (eps = 0.5) up
TIME_SCALE = (2 / -math.log(0.5), 1e5)
# the RBF's length scale over the [0, 1] inputs; the paper's code clips it at 1 too
LENGTH_SCALE = (1e-2, 1.0)
CANDIDATES = 1024  # points of each round of the acquisition search
NEAR = 0.05  # the second round's spread around the first round's best


class Columns(Kernel):
    """`kernel` on some columns of the inputs only: scikit-learn's kernels see them all,
    and PB2 multiplies a kernel of time by a kernel of everything else."""

    def __init__(self, kernel: Kernel, columns: Sequence[int]):
        self.kernel = kernel
        self.columns = columns

    @property
    def hyperparameters(self) -> list[Hyperparameter]:
        return [Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements,
                               h.fixed) for h in self.kernel.hyperparameters]

    @property
    def theta(self) -> np.ndarray:
        return self.kernel.theta

    @theta.setter
    def theta(self, theta: np.ndarray) -> None:
        self.kernel.theta = theta

    @property
    def bounds(self) -> np.ndarray:
        return self.kernel.bounds

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None,
                 eval_gradient: bool = False) -> Any:
        cols = list(self.columns)
        return self.kernel(np.asarray(X)[:, cols], None if Y is None else np.asarray(Y)[:, cols],
                           eval_gradient=eval_gradient)

    def diag(self, X: np.ndarray) -> np.ndarray:
        return self.kernel.diag(np.asarray(X)[:, list(self.columns)])

    def is_stationary(self) -> bool:
        return bool(self.kernel.is_stationary())


def propose(X: np.ndarray, y: np.ndarray, context: np.ndarray, pending: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The free inputs (the columns after `context`) PB2 proposes: the GP of `y` over `X`,
    its UCB maximized at `context` with the `pending` points' spread (`maximize_ucb`)."""
    # small matrices, decided inside a store transaction: BLAS threads only contend
    with threadpool_limits(1):
        return maximize_ucb(fit(X, y), context, pending, rng)


def fit(X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
    """The GP of `y` (standardized improvements) over `X`, its kernel fit by maximum
    likelihood: variance x RBF(every column but time) x time decay, plus noise."""
    rest = tuple(range(1, X.shape[1]))
    kernel = (ConstantKernel(1.0, (1e-2, 1e2))
              * Columns(RBF(0.5, LENGTH_SCALE), rest)
              * Columns(Matern(10.0, TIME_SCALE, nu=0.5), (0,))
              + WhiteKernel(0.1, (1e-5, 1.0)))
    model = GaussianProcessRegressor(kernel)
    with warnings.catch_warnings():  # a length scale at its bound is an answer, not an error
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def kappa(n: int) -> float:
    """The UCB weight of the paper's code, sqrt(0.2 log(0.4 n)) (0 below 3 points)."""
    return math.sqrt(max(0.0, 0.2 * math.log(0.4 * n)))


def maximize_ucb(model: GaussianProcessRegressor, context: np.ndarray, pending: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """The free inputs in [0, 1] (the columns after `context`) where the UCB at `context`
    is highest: the mean of `model`, plus kappa times its spread once the `pending` points
    (what the other members train now, at `context`) are in, so that they are not chosen
    twice (the paper's batch trick, with hallucinated observations)."""
    X = model.X_train_
    free = X.shape[1] - len(context)
    spread = model
    if len(pending):
        spread = GaussianProcessRegressor(model.kernel_, optimizer=None)
        spread.fit(np.vstack([X, pending]), np.concatenate([model.y_train_,
                                                            np.zeros(len(pending))]))
    weight = kappa(len(X))

    def ucb(u: np.ndarray) -> np.ndarray:
        rows = np.hstack([np.tile(context, (len(u), 1)), u])
        _, std = spread.predict(rows, return_std=True)
        return model.predict(rows) + weight * std

    # a wide random search, then a narrow one around its best: two batched predictions
    wide = rng.random((CANDIDATES, free))
    best = wide[int(np.argmax(ucb(wide)))]
    near = np.clip(best + rng.normal(0.0, NEAR, (CANDIDATES, free)), 0.0, 1.0)
    both = np.vstack([best[None, :], near])
    return both[int(np.argmax(ucb(both)))]
