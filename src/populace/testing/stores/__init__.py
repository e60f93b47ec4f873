"""The store contract, checked on fresh stores of one backend: what workers rely on.

The store is the single source of truth of a run (`populace.store.Store`): a claim is
atomic and leased, a report and its exploit decision are one transaction, nothing is
lost or stored twice when many workers report at once, checkpoints are collected
exactly when no one needs them. A backend (SQLite, PostgreSQL, one of your own) keeps
these promises for everything above it. `check_store(factory)` runs every check;
`STORE_CHECKS` lists them for a test to parametrize over. Each check opens stores
under names of its own and closes them when it ends.
"""

from __future__ import annotations

from collections.abc import Callable

# helpers for store checks of your own: a run, a lease, a segment's report
from populace.testing.stores._kit import (
    StoreFactory,
    claim_exactly,
    report,
    run_record,
    train,
)
from populace.testing.stores.claims import (
    check_store_a_claimed_member_is_not_claimed_again_while_its_lease_lives,
    check_store_an_expired_lease_makes_the_member_claimable_by_another_worker,
    check_store_claim_returns_none_when_every_member_is_running_or_done,
    check_store_claim_takes_the_member_furthest_behind,
    check_store_fail_marks_the_member_failed_with_its_error,
    check_store_heartbeat_extends_only_the_owners_lease,
    check_store_heartbeat_fails_once_the_lease_is_lost,
    check_store_release_gives_the_member_back_untouched,
)
from populace.testing.stores.collection import (
    check_store_a_checkpoint_another_member_points_at_is_never_collected,
    check_store_a_file_shared_by_two_rows_is_deleted_with_the_last_row,
    check_store_collection_invariants_over_random_runs,
    check_store_collection_keeps_the_newest_k_of_each_member,
    check_store_progress_summarises_the_population,
)
from populace.testing.stores.concurrency import (
    check_store_concurrent_workers_lose_and_duplicate_nothing,
    check_store_concurrent_workers_with_expiring_leases,
)
from populace.testing.stores.decisions import (
    check_store_a_decision_naming_a_donor_without_a_usable_checkpoint_is_dropped,
    check_store_a_decision_points_the_member_at_the_donors_checkpoint,
    check_store_a_decision_ranks_only_the_members_still_training,
    check_store_a_decision_that_raises_rolls_back_the_whole_report,
    check_store_a_final_report_is_not_decided_on,
    check_store_a_member_its_own_donor_explores_in_place,
    check_store_generation_counts_exploits_along_the_lineage,
    check_store_the_decision_sees_the_population_after_this_result,
)
from populace.testing.stores.evaluations import (
    check_store_a_fire_run_keeps_its_layout_and_curves,
    check_store_an_evaluation_starts_settles_and_is_adopted,
    check_store_an_evaluator_with_no_parent_left_idles,
)
from populace.testing.stores.reports import (
    check_store_a_refused_report_hands_back_its_checkpoint_file,
    check_store_a_report_after_the_lease_was_lost_is_refused_and_recorded,
    check_store_a_report_from_a_worker_that_never_claimed_is_refused,
    check_store_a_score_that_is_not_finite_is_stored_as_none,
    check_store_report_round_trip,
)
from populace.testing.stores.run import (
    check_store_a_fresh_store_holds_no_run,
    check_store_another_programs_database_is_not_a_store,
    check_store_another_programs_meta_table_is_not_a_store,
    check_store_another_schema_is_refused_naming_both_versions,
    check_store_create_and_read_back,
    check_store_creating_twice_is_refused_and_changes_nothing,
)

STORE_CHECKS: tuple[Callable[[StoreFactory], None], ...] = (
    check_store_create_and_read_back,
    check_store_creating_twice_is_refused_and_changes_nothing,
    check_store_a_fresh_store_holds_no_run,
    check_store_another_programs_database_is_not_a_store,
    check_store_another_programs_meta_table_is_not_a_store,
    check_store_another_schema_is_refused_naming_both_versions,
    check_store_claim_takes_the_member_furthest_behind,
    check_store_a_claimed_member_is_not_claimed_again_while_its_lease_lives,
    check_store_an_expired_lease_makes_the_member_claimable_by_another_worker,
    check_store_heartbeat_extends_only_the_owners_lease,
    check_store_heartbeat_fails_once_the_lease_is_lost,
    check_store_claim_returns_none_when_every_member_is_running_or_done,
    check_store_release_gives_the_member_back_untouched,
    check_store_fail_marks_the_member_failed_with_its_error,
    check_store_report_round_trip,
    check_store_a_score_that_is_not_finite_is_stored_as_none,
    check_store_a_report_after_the_lease_was_lost_is_refused_and_recorded,
    check_store_a_refused_report_hands_back_its_checkpoint_file,
    check_store_a_report_from_a_worker_that_never_claimed_is_refused,
    check_store_a_decision_points_the_member_at_the_donors_checkpoint,
    check_store_generation_counts_exploits_along_the_lineage,
    check_store_a_decision_naming_a_donor_without_a_usable_checkpoint_is_dropped,
    check_store_a_member_its_own_donor_explores_in_place,
    check_store_a_decision_that_raises_rolls_back_the_whole_report,
    check_store_the_decision_sees_the_population_after_this_result,
    check_store_a_decision_ranks_only_the_members_still_training,
    check_store_a_final_report_is_not_decided_on,
    check_store_collection_keeps_the_newest_k_of_each_member,
    check_store_a_checkpoint_another_member_points_at_is_never_collected,
    check_store_a_file_shared_by_two_rows_is_deleted_with_the_last_row,
    check_store_collection_invariants_over_random_runs,
    check_store_progress_summarises_the_population,
    check_store_concurrent_workers_lose_and_duplicate_nothing,
    check_store_concurrent_workers_with_expiring_leases,
    check_store_a_fire_run_keeps_its_layout_and_curves,
    check_store_an_evaluation_starts_settles_and_is_adopted,
    check_store_an_evaluator_with_no_parent_left_idles,
)


def check_store(factory: StoreFactory) -> None:
    """Run every store check with `factory`, which opens the store called `name`: a fresh,
    empty one for a new name, another connection to it for a name given before."""
    for check in STORE_CHECKS:
        check(factory)


__all__ = ["STORE_CHECKS", "StoreFactory", "check_store", "claim_exactly", "report",
           "run_record", "train",
           "check_store_create_and_read_back",
           "check_store_creating_twice_is_refused_and_changes_nothing",
           "check_store_a_fresh_store_holds_no_run",
           "check_store_another_programs_database_is_not_a_store",
           "check_store_another_programs_meta_table_is_not_a_store",
           "check_store_another_schema_is_refused_naming_both_versions",
           "check_store_claim_takes_the_member_furthest_behind",
           "check_store_a_claimed_member_is_not_claimed_again_while_its_lease_lives",
           "check_store_an_expired_lease_makes_the_member_claimable_by_another_worker",
           "check_store_heartbeat_extends_only_the_owners_lease",
           "check_store_heartbeat_fails_once_the_lease_is_lost",
           "check_store_claim_returns_none_when_every_member_is_running_or_done",
           "check_store_release_gives_the_member_back_untouched",
           "check_store_fail_marks_the_member_failed_with_its_error",
           "check_store_report_round_trip",
           "check_store_a_score_that_is_not_finite_is_stored_as_none",
           "check_store_a_report_after_the_lease_was_lost_is_refused_and_recorded",
           "check_store_a_refused_report_hands_back_its_checkpoint_file",
           "check_store_a_report_from_a_worker_that_never_claimed_is_refused",
           "check_store_a_decision_points_the_member_at_the_donors_checkpoint",
           "check_store_generation_counts_exploits_along_the_lineage",
           "check_store_a_decision_naming_a_donor_without_a_usable_checkpoint_is_dropped",
           "check_store_a_member_its_own_donor_explores_in_place",
           "check_store_a_decision_that_raises_rolls_back_the_whole_report",
           "check_store_the_decision_sees_the_population_after_this_result",
           "check_store_a_decision_ranks_only_the_members_still_training",
           "check_store_a_final_report_is_not_decided_on",
           "check_store_collection_keeps_the_newest_k_of_each_member",
           "check_store_a_checkpoint_another_member_points_at_is_never_collected",
           "check_store_a_file_shared_by_two_rows_is_deleted_with_the_last_row",
           "check_store_collection_invariants_over_random_runs",
           "check_store_progress_summarises_the_population",
           "check_store_concurrent_workers_lose_and_duplicate_nothing",
           "check_store_concurrent_workers_with_expiring_leases",
           "check_store_a_fire_run_keeps_its_layout_and_curves",
           "check_store_an_evaluation_starts_settles_and_is_adopted",
           "check_store_an_evaluator_with_no_parent_left_idles"]
