"""TensorBoard and MLflow copies of a run, read back with each tool's own reader.

A run logs itself live (the `tensorboard` and `mlflow` settings), then `populace
export` writes the finished run again: both must hold exactly what the store holds
(every result as a point, every exploit with its donor and hparams, the lineage,
the best member), and an export over an earlier one replaces it.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from populace import Float, Trainable, load_result, run
from populace.cli import main
from populace.export.rows import ancestry
from populace.store import Kind, open_store

POPULATION, STEPS = 4, 24


class Climb(Trainable):
    """Climbs towards 1 at a speed set by `rate`; reports its distance too."""

    def build(self, hparams, seed):
        self.x = 0.0
        self.apply(hparams)

    def apply(self, hparams):
        self.rate = hparams["rate"]

    def step(self):
        self.x += self.rate * (1.0 - self.x)

    def evaluate(self):
        return {"score": self.x, "gap": 1.0 - self.x}

    def save(self, path: Path):
        path.write_text(json.dumps(self.x))

    def load(self, path: Path):
        self.x = json.loads(path.read_text())


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A finished run that logged itself live to TensorBoard and MLflow."""
    root = tmp_path_factory.mktemp("export")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    space = {"rate": Float(0.01, 0.3, log=True)}
    # in worker processes, whose reports the run's own process logs from the store; then
    # resumed for more steps, which logs the whole run again, not twice
    run(Climb, space, store=root / "run.db", population=POPULATION, steps=STEPS // 2,
        ready_steps=4, executor="local", workers=2, progress=False,
        tensorboard=str(root / "live"), mlflow=uri)
    run(Climb, space, store=root / "run.db", steps=STEPS, executor="inline", progress=False,
        tensorboard=str(root / "live"), mlflow=uri)
    return {"store": root / "run.db", "live": root / "live", "uri": uri, "root": root}


def _tensorboard(folder: Path, member: int) -> EventAccumulator:
    log = EventAccumulator(str(folder / f"member-{member}"))
    log.Reload()
    return log


def _text(log: EventAccumulator, tag: str) -> list[tuple[int, str]]:
    if f"{tag}/text_summary" not in log.Tags()["tensors"]:
        return []
    return [(t.step, t.tensor_proto.string_val[0].decode())
            for t in log.Tensors(f"{tag}/text_summary")]


def _check_tensorboard(folder: Path, store_path: Path) -> None:
    with closing(open_store(store_path)) as store:
        results, events, members = store.results(), store.events(Kind.EXPLOIT), store.members()
    assert events, "the run made no copy: nothing to see"
    for member in range(POPULATION):
        log = _tensorboard(folder, member)
        mine = [r for r in results if r.member == member]
        assert [(s.step, s.value) for s in log.Scalars("score")] == [
            (r.step, pytest.approx(r.score, rel=1e-6)) for r in mine]
        assert [s.value for s in log.Scalars("metrics/gap")] == [
            pytest.approx(r.metrics["gap"], rel=1e-6) for r in mine]
        # the hparams in force by step: the schedule, with each explored value
        assert [s.value for s in log.Scalars("hparams/rate")] == [
            pytest.approx(r.hparams["rate"], rel=1e-6) for r in mine]
        copies = [e for e in events if e.member == member]
        shown = _text(log, "exploit")
        assert [step for step, _ in shown] == [e.step for e in copies]
        for (_, line), e in zip(shown, copies, strict=True):
            assert f"copied member {e.donor} (at its step {e.donor_step})" in line
            assert json.dumps(e.before) in line and json.dumps(e.after) in line
    best = load_result(store_path).best.id
    assert _text(_tensorboard(folder, best), "best")
    for member in members:  # the HParams tab: each member's last hparams
        start = _tensorboard(folder, member.id).SummaryMetadata("_hparams_/session_start_info")
        shown = HParamsPluginData.FromString(start.plugin_data.content).session_start_info
        assert shown.hparams["rate"].number_value == pytest.approx(member.hparams["rate"])


def _check_mlflow(uri: str, store_path: Path) -> None:
    with closing(open_store(store_path)) as store:
        results, members, run_id = store.results(), store.members(), store.meta("run")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("populace").experiment_id
    found = client.search_runs([experiment], f"tags.`populace.run` = '{run_id}'")
    parents = [r for r in found if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    assert len(parents) == 1  # an earlier copy of the same run was replaced, not kept
    parent = parents[0]
    assert parent.data.params["population"] == str(POPULATION)
    assert parent.info.status == "FINISHED"
    children = {int(r.data.tags["populace.member"]): r for r in found
                if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent.info.run_id}
    assert sorted(children) == list(range(POPULATION))
    best = load_result(store_path).best
    assert parent.data.tags["populace.best_member"] == str(best.id)
    assert [m for m, r in children.items() if r.data.tags.get("populace.best")] == [best.id]
    assert parent.data.metrics["best_score"] == pytest.approx(best.score)
    for member in members:
        child = children[member.id]
        mine = [r for r in results if r.member == member.id]
        history = client.get_metric_history(child.info.run_id, "score")
        assert sorted((m.step, m.value) for m in history) == sorted(
            (r.step, pytest.approx(r.score)) for r in mine)
        rates = client.get_metric_history(child.info.run_id, "hparams/rate")
        assert sorted((m.step, m.value) for m in rates) == sorted(
            (r.step, pytest.approx(r.hparams["rate"])) for r in mine)
        assert child.data.params["rate"] == json.dumps(mine[0].hparams["rate"])
        assert child.data.tags["populace.generation"] == str(member.generation)
        assert child.data.tags["populace.lineage"] == ancestry(member, results)
        assert child.info.status == "FINISHED"
    copied = [m for m in members if m.generation > 0]
    assert copied
    for m in copied:  # its weights went through another member's training
        # not necessarily its donor's: a donor that had itself just copied a third member,
        # and not trained since, handed over that member's weights
        spans = children[m.id].data.tags["populace.lineage"].split(" > ")
        assert len(spans) > 1 and any(not s.startswith(f"{m.id} [") for s in spans)


def test_a_live_run_is_in_tensorboard_and_mlflow(logged: dict) -> None:
    _check_tensorboard(logged["live"], logged["store"])
    _check_mlflow(logged["uri"], logged["store"])


def test_export_writes_a_finished_run_again_replacing_the_earlier_copy(logged: dict,
                                                                        capsys) -> None:
    out = logged["root"] / "exported"
    for _ in range(2):  # the second export replaces the first's files and MLflow runs
        assert main(["export", str(logged["store"]), "--tensorboard", str(out),
                     "--mlflow", logged["uri"]]) == 0
    assert len(list((out / "member-0").iterdir())) == 1
    _check_tensorboard(out, logged["store"])
    _check_mlflow(logged["uri"], logged["store"])
    assert "tensorboard --logdir" in capsys.readouterr().out


def test_mlflow_takes_a_uri_as_given_and_a_folder_or_beside_as_a_sqlite_file(tmp_path) -> None:
    from populace.export import mlflow_uri

    store = tmp_path / "runs" / "x.db"
    assert mlflow_uri("http://host:5000", store) == "http://host:5000"
    assert mlflow_uri("beside", store) == f"sqlite:///{tmp_path / 'runs' / 'x.mlflow.db'}"
    assert mlflow_uri(str(tmp_path / "ml"), store) == f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    assert (tmp_path / "ml").is_dir()  # made, for SQLite to create its file in


def test_export_needs_a_destination(logged: dict, capsys) -> None:
    assert main(["export", str(logged["store"])]) == 2
    assert "--tensorboard DIR, --mlflow [URI]" in capsys.readouterr().err


def test_a_log_setting_must_name_a_place() -> None:
    from populace import ConfigError, RunConfig

    with pytest.raises(ConfigError, match="tensorboard must be a folder, got ''"):
        RunConfig(tensorboard="")
    with pytest.raises(ConfigError, match="mlflow must be an MLflow tracking URI"):
        RunConfig(mlflow=3)


def test_numbers_plot_and_choices_of_words_or_flags_do_not() -> None:
    from populace.export.rows import numbers

    assert numbers({"lr": np.float64(0.1), "depth": 3, "act": "relu", "flag": True}) == {
        "lr": 0.1, "depth": 3.0}


def test_a_missing_package_is_named_with_its_extra(logged: dict, monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "populace.export.tensorboard", raising=False)
    out = logged["root"] / "missing"
    assert main(["export", str(logged["store"]), "--tensorboard", str(out)]) == 2
    assert ("tensorboard: logging a run to tensorboard needs the package tensorboardX: pip "
            "install 'populace[tensorboard]'") in capsys.readouterr().err


def test_a_replay_does_not_log_over_the_runs_logs(logged: dict) -> None:
    from populace.replay import replay

    def files() -> dict[str, int]:
        return {str(p): p.stat().st_size for p in logged["live"].rglob("*") if p.is_file()}

    client = MlflowClient(tracking_uri=logged["uri"])
    experiment = client.get_experiment_by_name("populace").experiment_id
    before, runs = files(), len(client.search_runs([experiment]))
    replay(logged["store"], logged["root"] / "replay.db", progress=False)
    assert files() == before and len(client.search_runs([experiment])) == runs
