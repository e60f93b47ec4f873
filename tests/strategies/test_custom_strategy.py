"""Strategies that are not built in, end to end: as objects, by import path, and per hparam.

The strategies are defined at the top level of this module, so a worker
rebuilds them from the import path the run stores ("<this module>:Follow").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.paths import COUNTER, EXAMPLES

import populace
from populace.cli import main
from populace.script import load_script
from populace.store import open_store
from populace.strategies import Snapshot

EXAMPLE = EXAMPLES / "custom_strategy.py"


@dataclass(frozen=True)
class Follow:
    """Exploit no built-in strategy would make: every member copies `leader`, whatever the
    scores, once the leader has trained as far (copying a member that is behind would send
    the follower back to that step, and the leader might never get its turn)."""

    leader: int = 0

    def __call__(self, snapshot, member_id, rng):
        if member_id == self.leader:
            return None
        behind = snapshot.steps[snapshot.index(self.leader)] < snapshot.steps[
            snapshot.index(member_id)]
        return None if behind else self.leader


def halve(hparams, space, rng):
    """Explore as a plain function: every float hparam halved."""
    return {k: v / 2 if isinstance(v, float) else v for k, v in hparams.items()}


def assert_everyone_followed(store_path: Path, leader: int, explore: str) -> None:
    """Every exploit copied `leader` and halved its (never changing) hparams."""
    store = open_store(store_path)
    try:
        run = store.config().run
        leader_x = next(m.hparams["x"] for m in store.members() if m.id == leader)
        events = store.events("exploit")
    finally:
        store.close()
    assert run["exploit"] == {"name": f"{__name__}:Follow", "leader": leader}
    assert run["explore"] == {"name": explore}
    assert len(events) >= 3
    for e in events:
        assert e.donor == leader and e.member != leader
        assert e.strategy == f"{__name__}:Follow+{explore}"
        assert e.after == {"x": leader_x / 2}


def test_strategy_objects_of_your_own_through_the_api(tmp_path):
    counter = load_script(COUNTER)
    populace.run(
        counter.trainable, counter.space, store=tmp_path / "api.db", progress=False,
        initial=[{"x": 0.8}, {"x": 0.2}, {"x": 0.4}, {"x": 0.6}],
        **{**counter.config, "executor": "inline", "exploit": Follow(0), "explore": halve},
    )
    assert_everyone_followed(tmp_path / "api.db", 0, f"{__name__}:halve")


def test_strategies_of_your_own_by_import_path_in_a_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"exploit: {{name: '{__name__}:Follow', leader: 2}}\n"
        f"explore: {{name: '{__name__}.halve'}}\n"
    )
    store = tmp_path / "cli.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--config", str(config),
                 "--quiet", "--executor", "inline"]) == 0
    assert_everyone_followed(store, 2, f"{__name__}.halve")  # stored as written


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("exploit: {name: 'no_such_module_xyz:Thing'}",
         "exploit 'no_such_module_xyz:Thing' cannot be imported: ModuleNotFoundError: "
         "No module named 'no_such_module_xyz'"),
        ("exploit: populace.strategies:Best",
         "exploit 'populace.strategies:Best' cannot be imported: AttributeError"),
        ("exploit: {name: 'MODULE:Follow', leeder: 1}",
         "has no parameter 'leeder'; allowed: leader"),
        ("explore: {name: 'MODULE:halve', factor: 2}",
         "is not a class, so it takes no parameters; got factor"),
        ("exploit: json:dumps", "must be callable as exploit(snapshot, member_id, rng)"),
        ("exploit: best", "exploit must be one of truncation, tournament, ttest, none, own, "
                          "fire; "
                          "got 'best'"),
    ],
)
def test_bad_import_paths_exit_2_naming_them_and_write_nothing(tmp_path, capsys, yaml, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.replace("MODULE", __name__) + "\n")
    store = tmp_path / "bad.db"
    code = main(["run", str(COUNTER), "--store", str(store), "--config", str(config),
                 "--quiet", "--executor", "inline"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_the_example_copies_the_best_and_explores_per_hparam(tmp_path):
    """examples/custom_strategy.py in worker processes (the local executor): its own
    exploit, defined in the script, and its per-hparam rules (Noise on h, perturb on lr)."""
    store_path = tmp_path / "example.db"
    # one worker process: the same decisions on every run, however busy the machine is
    assert main(["run", str(EXAMPLE), "--store", str(store_path), "--quiet",
                 "--workers", "1"]) == 0
    store = open_store(store_path)
    try:
        config = store.config()
        results = store.results()
        events = [e for e in store.events() if e.kind in ("exploit", "wait")]
        steps = store.config().run["steps"]
    finally:
        store.close()
    exploit = config.run["exploit"]
    assert exploit["name"].endswith(":CopyBest") and exploit["margin"] == 0.02
    assert config.space["h0"]["explore"] == {"name": "noise", "scale": 0.1}
    assert "explore" not in config.space["lr"]
    assert any(e.kind == "exploit" for e in events)

    # replay the run: results and events in the order they happened (an event follows
    # the newest result when it was written); a decision is its 'wait' event, or an
    # 'exploit' that did not wait. CopyBest sees the population aligned at the deciding
    # member's step (Snapshot.aligned, tested on its own), rebuilt here from the trails.
    timeline = sorted([(r.id, 0, r.id, r) for r in results]
                      + [(e.result, 1, e.id, e) for e in events], key=lambda t: t[:3])
    trails, hparams, waiting, done = {}, {}, set(), set()
    unstuck = 0
    for _, is_event, _, x in timeline:
        if not is_event:
            trails[x.member] = [*trails.get(x.member, []), (x.step, x.score)]
            hparams.setdefault(x.member, x.hparams)
            if x.step >= steps:
                done.add(x.member)
            continue
        e = x
        if e.member not in waiting:  # the decision: what CopyBest saw
            ids = sorted(m for m in trails if m not in waiting | done)
            seen = Snapshot(
                ids=np.array(ids), steps=np.array([trails[m][-1][0] for m in ids]),
                scores=np.array([trails[m][-1][1] for m in ids]),
                hparams=[hparams[m] for m in ids], trails=[trails[m] for m in ids],
            ).aligned(e.member)
            scores = dict(zip(ids, seen.scores, strict=True))
            assert scores[e.donor] == max(scores.values())  # CopyBest: the best member
            assert scores[e.donor] - scores[e.member] > 0.02  # only when behind by the margin
            donor = hparams[e.donor]
            ratio = e.after["lr"] / donor["lr"]
            assert (np.isclose(ratio, 0.8) or np.isclose(ratio, 1.2)
                    or e.after["lr"] in (0.002, 0.05))  # the run's perturb, clipped at bounds
            for h in ("h0", "h1"):
                assert 0.0 <= e.after[h] <= 1.0
                unstuck += donor[h] == 0.0 and e.after[h] > 0.0
        if e.kind == "wait":
            waiting.add(e.member)
        else:  # the copy: the donor's hparams, explored, and its trail, with its weights
            waiting.discard(e.member)
            hparams[e.member], trails[e.member] = e.after, trails[e.donor]
    assert unstuck > 0  # Noise moved an hparam at 0, which no perturb factor can
