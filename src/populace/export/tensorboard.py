"""A run as TensorBoard logs: one folder per member, written with tensorboardX.

Each member's folder holds its score and metrics by step, the numeric hparams in
force as curves (the schedule), each exploit as text with its donor and the
hparams before and after, and, at the end, its last hparams against its score for
TensorBoard's HParams tab. The folder always shows the store: event files an
earlier export or live log of populace wrote there are replaced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tensorboardX import SummaryWriter
from tensorboardX.summary import hparams

from populace.export.rows import numbers, said
from populace.results import RunResult
from populace.store import Event, Kind, MemberRow, Result, Store

SUFFIX = ".populace"  # ends the name of every event file populace writes


class TensorBoardLog:
    """Writes each member's rows to `folder/member-N`, one SummaryWriter per member."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        for old in self.folder.glob(f"member-*/events.out.tfevents.*{SUFFIX}"):
            old.unlink()
        self._writers: dict[int, SummaryWriter] = {}
        self._width = 1

    def _writer(self, member: int) -> SummaryWriter:
        if member not in self._writers:
            self._writers[member] = SummaryWriter(
                str(self.folder / f"member-{member:0{self._width}d}"), filename_suffix=SUFFIX)
        return self._writers[member]

    def write(self, results: Sequence[Result], events: Sequence[Event],
              members: Sequence[MemberRow], store: Store) -> None:
        self._width = len(str(len(members) - 1))  # member-03 sorts before member-12
        score = store.config().run["score"]
        for r in results:
            w = self._writer(r.member)
            if r.score is not None:
                w.add_scalar("score", r.score, r.step, walltime=r.time)
            for name, value in r.metrics.items():
                if name != score:
                    w.add_scalar(f"metrics/{name}", value, r.step, walltime=r.time)
            for name, value in numbers(r.hparams).items():
                w.add_scalar(f"hparams/{name}", value, r.step, walltime=r.time)
            if r.start == 0 and r.parent is None:  # a member's first segment
                w.add_text("hparams", json.dumps(r.hparams), r.start, walltime=r.time)
        for e in events:
            w = self._writer(e.member)
            w.add_text(str(e.kind), said(e), e.step, walltime=e.time)
            if e.kind == Kind.EXPLOIT and e.donor is not None:
                w.add_scalar("exploit/donor", e.donor, e.step, walltime=e.time)
        for w in self._writers.values():
            w.flush()

    def finish(self, members: Sequence[MemberRow], best: RunResult | None) -> None:
        for member in members:
            if member.id in self._writers:  # TensorBoard's HParams tab: hparams against score
                shown = {k: v if isinstance(v, (bool, str, int, float)) else json.dumps(v)
                         for k, v in member.hparams.items()}
                for summary in hparams(shown, {"score": member.score or 0.0}):
                    self._writers[member.id].file_writer.add_summary(summary)
        if best is not None:
            self._writer(best.best.id).add_text(
                "best", f"the run's best member: score {best.score} at step {best.best.step},"
                f" hparams {json.dumps(best.hparams)}", best.best.step)
        for w in self._writers.values():
            w.close()
