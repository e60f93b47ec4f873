"""PB2's model: a time-varying Gaussian process of the score's improvement, and where its
upper confidence bound is highest (Parker-Holder et al. 2020, section 3).

Built from scikit-learn's kernels (the `pb2` extra): imported only when PB2 explores.
Inputs are rows [time, context..., hparams...], every column scaled to [0, 1].
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel, StationaryKernelMixin
from threadpoolctl import threadpool_limits

# The paper's time kernel (1 - eps)^(|t - t'| / 2), eps in (0, 0.5], is Matern's nu = 1/2
# kernel exp(-|t - t'| / l) with l = 2 / -ln(1 - eps): from 2.885 (eps = 0.5) up
TIME_SCALE = (2 / -math.log(0.5), 1e5)
# the RBF's length scale over the [0, 1] inputs; the paper's code clips it at 1 too
LENGTH_SCALE = (1e-2, 1.0)
VARIANCE = (1e-2, 1e2)  # the signal's, over standardized improvements
NOISE = (1e-5, 1.0)
CANDIDATES = 1024  # points of each round of the acquisition search
NEAR = 0.05  # the second round's spread around the first round's best


class TimeVarying(StationaryKernelMixin, Kernel):
    """PB2's kernel in one piece: variance x RBF(every column but time) x Matern 1/2 of
    time (column 0), plus noise. The same function as scikit-learn's product and sum of
    those four kernels, with its gradient computed at once (one n x n x 4 array, not the
    nested products' stacked copies): a fit of 256 points several times faster, and a fit
    runs inside the report's write transaction."""

    def __init__(self, variance: float = 1.0, length_scale: float = 0.5,
                 time_scale: float = 10.0, noise: float = 0.1):
        self.variance = variance
        self.length_scale = length_scale
        self.time_scale = time_scale
        self.noise = noise

    @property
    def hyperparameter_variance(self) -> Hyperparameter:
        return Hyperparameter("variance", "numeric", VARIANCE)

    @property
    def hyperparameter_length_scale(self) -> Hyperparameter:
        return Hyperparameter("length_scale", "numeric", LENGTH_SCALE)

    @property
    def hyperparameter_time_scale(self) -> Hyperparameter:
        return Hyperparameter("time_scale", "numeric", TIME_SCALE)

    @property
    def hyperparameter_noise(self) -> Hyperparameter:
        return Hyperparameter("noise", "numeric", NOISE)

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None,
                 eval_gradient: bool = False) -> Any:
        X = np.atleast_2d(X)
        other = X if Y is None else np.atleast_2d(Y)
        if eval_gradient and Y is not None:
            raise ValueError("gradient can only be evaluated when Y is None")
        space = cdist(X[:, 1:], other[:, 1:], "sqeuclidean") / self.length_scale ** 2
        time = cdist(X[:, :1], other[:, :1], "cityblock") / self.time_scale
        signal = self.variance * np.exp(-0.5 * space - time)
        if Y is not None:
            return signal
        noise = self.noise * np.eye(len(X))
        if not eval_gradient:
            return signal + noise
        # d K / d log(parameter), in the order of `hyperparameters` (alphabetical)
        gradient = np.empty((len(X), len(X), 4))
        gradient[..., 0] = signal * space  # length_scale
        gradient[..., 1] = noise
        gradient[..., 2] = signal * time  # time_scale
        gradient[..., 3] = signal  # variance
        return signal + noise, gradient

    def diag(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.variance + self.noise)

    def __repr__(self) -> str:
        return (f"{self.variance:.3g} x RBF({self.length_scale:.3g}) x "
                f"Matern1/2(time, {self.time_scale:.3g}) + noise {self.noise:.3g}")


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
    model = GaussianProcessRegressor(TimeVarying())
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
