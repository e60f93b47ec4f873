"""What a new user reaches for in the first hour: the version, the best member's
checkpoint and schedule as data, the results as a table, clear command-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import populace
from populace.cli import main
from populace.store import open_store

COUNTER = Path(__file__).parent / "scripts" / "counter.py"
TOY = Path(__file__).resolve().parents[1] / "examples" / "toy.py"


@pytest.fixture
def finished(tmp_path) -> Path:
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "8"]) == 0
    return store


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"populace {populace.__version__}"


def test_an_unknown_flag_is_named_with_its_commands_usage(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "x.py", "--store", "x.db", "--bogus"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "usage: populace run" in err and "unrecognized arguments: --bogus" in err


def test_a_folder_given_as_the_script_is_named_a_folder(tmp_path, capsys):
    assert main(["run", str(tmp_path), "--store", str(tmp_path / "x.db")]) == 2
    assert "(a folder): name the .py file" in capsys.readouterr().err


def test_the_run_prints_the_best_members_checkpoint(tmp_path, capsys):
    store = tmp_path / "run.db"
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    best = populace.load_result(store)
    assert f"its checkpoint: {best.checkpoint}" in out
    assert Path(best.checkpoint).is_file()


def test_result_gives_the_best_member_its_checkpoint_and_schedule_as_json(finished, capsys):
    capsys.readouterr()
    assert main(["result", str(finished), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    best = populace.load_result(finished)
    assert data["member"] == best.best.id and data["score"] == best.score
    assert data["checkpoint"] == str(best.checkpoint) and Path(data["checkpoint"]).is_file()
    assert data["schedule"] == [{"step": e.step, "hparams": e.hparams, "member": e.member}
                                for e in best.schedule]
    assert data["schedule"][0]["step"] == 0
    assert main(["result", str(finished)]) == 0
    assert "its schedule" in capsys.readouterr().out


def test_status_json_gives_each_members_checkpoint(finished, capsys):
    capsys.readouterr()
    assert main(["status", str(finished), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    members = open_store(finished).members()
    for row, member in zip(rows, members, strict=True):
        assert row["checkpoint"].endswith(member.checkpoint.key)
        assert Path(row["checkpoint"]).is_file()


def test_load_result_reads_a_run_without_resuming_it(finished):
    results = len(open_store(finished).results())
    result = populace.load_result(finished)
    assert result.best.step == 8 and result.score is not None
    assert len(open_store(finished).results()) == results
    with pytest.raises(populace.store.StoreError, match="does not exist"):
        populace.load_result(finished.with_name("none.db"))


def test_the_results_as_a_dataframe(finished):
    frame = populace.load_result(finished).dataframe()
    results = open_store(finished).results()
    assert len(frame) == len(results)
    assert {"member", "start", "step", "score", "metric_total", "hparam_x"} <= set(frame)
    assert list(frame["score"]) == [r.score for r in results]
    assert list(frame["hparam_x"]) == [r.hparams["x"] for r in results]


def test_status_events_lists_every_kind(tmp_path, monkeypatch, capsys):
    store = tmp_path / "run.db"
    monkeypatch.setenv("COUNTER_FAIL_ABOVE", "0.5")
    assert main(["run", str(COUNTER), "--store", str(store), "--executor", "inline",
                 "--quiet", "--steps", "4", "--exploit", "none"]) == 0
    capsys.readouterr()
    assert main(["status", str(store), "--events", "--json"]) == 0
    kinds = {row["kind"] for row in json.loads(capsys.readouterr().out)}
    assert "failed" in kinds
