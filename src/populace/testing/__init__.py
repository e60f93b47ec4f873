"""Contract batteries that ship with populace: what every implementation must do.

As scikit-learn's `check_estimator`, each battery is one call for your own
implementation, and a list of individual checks for a test to parametrize over:

- `check_exploit(strategy)`, `check_explore(strategy, space=None)`: a strategy of
  your own (`EXPLOIT_CHECKS`, `EXPLORE_CHECKS`).

Every check raises AssertionError naming the implementation, the check and the
inputs it failed on. Nothing here imports pytest: the checks run under any test
runner, or none.
"""

from __future__ import annotations

from populace.testing.exploit import (
    EXPLOIT_CHECKS,
    check_exploit,
    check_exploit_all_nan,
    check_exploit_deterministic,
    check_exploit_donor_is_another_member,
    check_exploit_many_members,
    check_exploit_nan_never_donates,
    check_exploit_population_of_two,
    check_exploit_pure,
)
from populace.testing.explore import (
    EXPLORE_CHECKS,
    check_explore,
    check_explore_deterministic,
    check_explore_in_space,
    check_explore_pure,
    check_explore_returns_new_dict,
)

__all__ = [
    "EXPLOIT_CHECKS",
    "EXPLORE_CHECKS",
    "check_exploit",
    "check_exploit_all_nan",
    "check_exploit_deterministic",
    "check_exploit_donor_is_another_member",
    "check_exploit_many_members",
    "check_exploit_nan_never_donates",
    "check_exploit_population_of_two",
    "check_exploit_pure",
    "check_explore",
    "check_explore_deterministic",
    "check_explore_in_space",
    "check_explore_pure",
    "check_explore_returns_new_dict",
]
