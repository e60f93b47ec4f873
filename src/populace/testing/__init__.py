"""Contract batteries that ship with populace: what every implementation must do.

As scikit-learn's `check_estimator`, each battery is one call for your own
implementation, and a list of individual checks for a test to parametrize over:

- `check_exploit(strategy)`, `check_explore(strategy, space=None)`: a strategy of
  your own (`EXPLOIT_CHECKS`, `EXPLORE_CHECKS`).
- `check_storage(factory)`: a checkpoint storage at a folder or fsspec URL, each
  check on a fresh one from `factory` (`STORAGE_CHECKS`).
- `check_executor(train, store)`: an executor, on the store of a run it trained
  (`EXECUTOR_CHECKS`); `trace` and `check_same_run` compare two runs.
- `check_store(factory)`: a store backend, each check on stores of its own that
  `factory(name)` opens (`STORE_CHECKS`; the checks one by one in
  `populace.testing.stores`).

Every check raises AssertionError naming the implementation, the check and the
inputs it failed on. Nothing here imports pytest: the checks run under any test
runner, or none.
"""

from __future__ import annotations

from populace.testing.checkpoints import (
    STORAGE_CHECKS,
    StorageFactory,
    check_storage,
    check_storage_concurrent_writers,
    check_storage_damage_is_found,
    check_storage_delete_is_idempotent,
    check_storage_different_bytes,
    check_storage_empty_checkpoint,
    check_storage_failed_save_leaves_nothing,
    check_storage_files_and_remove,
    check_storage_mark,
    check_storage_no_temp_files,
    check_storage_pickles,
    check_storage_refuses_bad_keys,
    check_storage_rewrite_after_damage,
    check_storage_round_trip,
    check_storage_same_bytes_twice,
    check_storage_save_must_write_its_file,
)
from populace.testing.executors import (
    EXECUTOR_CHECKS,
    RunTrace,
    Train,
    check_checkpoints_intact,
    check_copies_from_members,
    check_executor,
    check_members_done,
    check_no_result_twice,
    check_same_run,
    check_steps_rise,
    trace,
)
from populace.testing.exploit import (
    EXPLOIT_CHECKS,
    check_exploit,
    check_exploit_all_nan,
    check_exploit_deterministic,
    check_exploit_donor_is_a_member,
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
from populace.testing.stores import STORE_CHECKS, StoreFactory, check_store

__all__ = [
    "STORE_CHECKS",
    "StoreFactory",
    "check_store",
    "EXECUTOR_CHECKS",
    "RunTrace",
    "Train",
    "check_checkpoints_intact",
    "check_copies_from_members",
    "check_executor",
    "check_members_done",
    "check_no_result_twice",
    "check_same_run",
    "check_steps_rise",
    "trace",
    "STORAGE_CHECKS",
    "StorageFactory",
    "check_storage",
    "check_storage_concurrent_writers",
    "check_storage_damage_is_found",
    "check_storage_delete_is_idempotent",
    "check_storage_different_bytes",
    "check_storage_empty_checkpoint",
    "check_storage_failed_save_leaves_nothing",
    "check_storage_files_and_remove",
    "check_storage_mark",
    "check_storage_no_temp_files",
    "check_storage_pickles",
    "check_storage_refuses_bad_keys",
    "check_storage_rewrite_after_damage",
    "check_storage_round_trip",
    "check_storage_same_bytes_twice",
    "check_storage_save_must_write_its_file",
    "EXPLOIT_CHECKS",
    "EXPLORE_CHECKS",
    "check_exploit",
    "check_exploit_all_nan",
    "check_exploit_deterministic",
    "check_exploit_donor_is_a_member",
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
