"""A run in MLflow: a parent run for the PBT run, one nested run per member.

The parent holds the run's settings as params and is tagged with the best member;
each member's run holds its starting hparams as params, its score, metrics and
hparams in force by step, and its lineage, generation, donor and status as tags
(updated as it trains). MLflow's params cannot change, which is why the hparams
an exploit brings are metrics. A run logged before under the same populace run
(an earlier export, or a live log before a resume) is deleted first: the store is
the one source, and MLflow would otherwise hold each metric twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from populace.export.rows import ancestry, numbers, said
from populace.results import RunResult
from populace.store import TRAINING, Event, Kind, MemberRow, Result, Status, Store
from populace.store.driver import safe_url

EXPERIMENT = "populace"
RUN_TAG = "populace.run"  # the store's run id, on the parent and every member's run
BATCH = 1000  # the most metrics MLflow takes in one log_batch


class MlflowLog:
    """Logs the run in `store` to the MLflow tracking server or database at `uri`."""

    def __init__(self, uri: str, store: Store) -> None:
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        self.experiment = (experiment.experiment_id if experiment is not None
                           else self.client.create_experiment(EXPERIMENT))
        run_id = str(store.meta("run"))
        for old in self.client.search_runs([self.experiment], f"tags.`{RUN_TAG}` = '{run_id}'"):
            self.client.delete_run(old.info.run_id)
        config = store.config()
        self.parent = self.client.create_run(
            self.experiment, run_name=Path(safe_url(store.url)).stem,
            tags={RUN_TAG: run_id, "populace.store": safe_url(store.url)}).info.run_id
        self.client.log_batch(self.parent, params=[
            Param(k, _text(v)) for k, v in config.run.items() if v is not None])
        self._tags = {RUN_TAG: run_id, MLFLOW_PARENT_RUN_ID: self.parent}
        self.runs: dict[int, str] = {}  # member id -> its MLflow run

    def _run(self, member: MemberRow, hparams: dict[str, Any]) -> str:
        if member.id not in self.runs:
            run = self.client.create_run(self.experiment, run_name=f"member-{member.id}",
                                         tags={**self._tags, "populace.member": str(member.id)})
            self.runs[member.id] = run.info.run_id
            self.client.log_batch(run.info.run_id, params=[
                Param(k, _text(v)) for k, v in hparams.items()])
        return self.runs[member.id]

    def write(self, results: Sequence[Result], events: Sequence[Event],
              members: Sequence[MemberRow], store: Store) -> None:
        score = store.config().run["score"]
        metrics: dict[int, list[Metric]] = {}
        for r in results:
            stamp = int(r.time * 1000)
            values = {"score": r.score, **{f"metrics/{k}": v for k, v in r.metrics.items()
                                           if k != score},
                      **{f"hparams/{k}": v for k, v in numbers(r.hparams).items()}}
            metrics.setdefault(r.member, []).extend(
                Metric(k, float(v), stamp, r.step) for k, v in values.items() if v is not None)
        touched = {r.member for r in results} | {e.member for e in events}
        everything = store.results()
        for member in members:
            if member.id not in touched:
                continue
            first = next((r.hparams for r in everything if r.member == member.id
                          and r.parent is None and r.start == 0), member.hparams)
            run = self._run(member, first)
            rows = metrics.get(member.id, [])
            for i in range(0, len(rows), BATCH):
                self.client.log_batch(run, metrics=rows[i:i + BATCH])
            copies = [said(e) for e in events if e.member == member.id
                      and e.kind == Kind.EXPLOIT]
            self.client.log_batch(run, tags=[
                RunTag("populace.generation", str(member.generation)),
                RunTag("populace.donor", str(member.parent)),
                RunTag("populace.lineage", ancestry(member, everything)),
                RunTag("populace.status", str(member.status)),
                *([RunTag("populace.last_exploit", copies[-1])] if copies else []),
            ])

    def finish(self, members: Sequence[MemberRow], best: RunResult | None) -> None:
        for member in members:
            if member.id in self.runs:
                self.client.set_terminated(self.runs[member.id], _status(member.status))
        if best is not None and best.best.id in self.runs:
            self.client.set_tag(self.runs[best.best.id], "populace.best", "true")
            self.client.set_tag(self.parent, "populace.best_member", str(best.best.id))
            if best.score is not None:
                self.client.log_metric(self.parent, "best_score", best.score,
                                       step=best.best.step)
        unfinished = any(m.status in TRAINING for m in members)
        self.client.set_terminated(self.parent, "KILLED" if unfinished else "FINISHED")


def _status(status: Status) -> str:
    """A member's status as an MLflow run's: stopped before its end is KILLED."""
    return {Status.DONE: RunStatus.to_string(RunStatus.FINISHED),
            Status.FAILED: RunStatus.to_string(RunStatus.FAILED)}.get(
        status, RunStatus.to_string(RunStatus.KILLED))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
