"""The function API: a user's own loop, handed a populace.Member, on both executors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.paths import SCRIPTS

import populace
from populace.script import load_script
from populace.store import open_store

SCRIPT = SCRIPTS / "regression_fn.py"


def run(tmp_path: Path, initial=None, **settings):
    s = load_script(SCRIPT)
    return populace.run(s.trainable, s.space, store=tmp_path / "fn.db", script=SCRIPT,
                        progress=False, initial=initial, **{**s.config, **settings})


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_training_function_runs_pbt(tmp_path, monkeypatch, executor):
    # a worker process that starts late must not find the run over: the first members
    # to report rank against the whole population, so a member that has not reported
    # holds the bottom place until it does
    monkeypatch.setenv("REGRESSION_SLEEP", "0.05" if executor == "local" else "0")
    result = run(tmp_path, executor=executor, workers=2)
    store = open_store(tmp_path / "fn.db")
    members = store.members()
    assert [m.step for m in members] == [12] * 4
    assert all(m.status == "done" for m in members)
    assert store.events("exploit"), "truncation with 4 members exploits at some ready point"
    assert result.score < 1.0
    # the lr the optimizer really used is the member's hparam, after every exploit too
    for r in store.results():
        assert r.metrics["lr"] == pytest.approx(r.hparams["lr"])


def test_population_larger_than_workers(tmp_path):
    run(tmp_path, executor="inline", population=5)
    assert [m.step for m in open_store(tmp_path / "fn.db").members()] == [12] * 5


def test_forgetting_register_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRESSION_FORGET_REGISTER", "1")
    with pytest.raises(populace.ConfigError, match=r"call member.register"):
        run(tmp_path, executor="inline")
    assert not (tmp_path / "fn.db").exists()


def _linear(member, *, metric="loss", modules=None, ignore=("dropout",)):
    """A loop over a Linear layer and a Dropout, reporting `metric`."""
    import torch

    model = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    member.register({"model": model, "optimizer": optimizer}, modules=modules,
                    ignore=ignore)
    while member.training:
        member.report({metric: float(model[0].p)})


SPACE = {"lr": populace.Float(0.01, 0.1), "dropout": populace.Float(0.1, 0.5)}


@pytest.mark.parametrize("settings, words", [
    ({"ignore": ()}, "hparam 'dropout' has no target"),
    ({"metric": "acc"}, "score 'loss' is not among the metrics member.report returned"),
    ({"modules": {"dropout": ("net", "Dropout", "p")}, "ignore": ()},
     "modules['dropout'] names 'net', which is not in the state given to register"),
])
def test_a_functions_deterministic_mistake_is_refused_before_the_run(tmp_path, settings,
                                                                      words):
    calls = []

    def train(member):
        calls.append(member.id)
        _linear(member, **settings)

    with pytest.raises(populace.ConfigError, match=words.replace("[", r"\[")):
        populace.run(train, SPACE, store=tmp_path / "f.db", executor="inline",
                     progress=False, population=4, steps=4, score="loss")
    assert calls == [0] and not (tmp_path / "f.db").exists()  # one try, nothing written


def test_a_function_names_its_dropout_module_as_a_torch_trainable_does(tmp_path):
    import torch

    modules = {"dropout": ("model", torch.nn.Dropout, "p")}
    result = populace.run(lambda m: _linear(m, modules=modules, ignore=()), SPACE,
                          store=tmp_path / "f.db", executor="inline", progress=False,
                          population=2, steps=2, ready_steps=1, score="loss")
    for r in open_store(result.store).results():  # the Dropout's p is the member's hparam
        assert r.metrics["loss"] == pytest.approx(r.hparams["dropout"])


def test_returning_before_the_member_is_done_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRESSION_RETURN_EARLY", "1")
    with pytest.raises(populace.RunFailed, match=r"loop on `while member.training`"):
        run(tmp_path, executor="inline")


def test_an_exploited_member_carries_on_in_the_same_loop(tmp_path, monkeypatch):
    """Claimed again after an exploit, the member goes on in the running loop, restored."""
    calls = tmp_path / "calls"
    monkeypatch.setenv("REGRESSION_CALLS", str(calls))
    # member 0's lr barely moves it: it loses every tournament against member 1. One worker
    # alternates members when one falls behind, and keeps its member on a tie
    run(tmp_path, executor="inline", population=2, steps=30, ready_steps=2,
        exploit={"name": "tournament"},
        initial=[{"lr": 0.001, "momentum": 0.0}, {"lr": 0.2, "momentum": 0.5}])
    store = open_store(tmp_path / "fn.db")
    assert [m.step for m in store.members()] == [30, 30]
    exploits = store.events("exploit")
    assert exploits
    results = store.results()
    # fewer calls of the function than segments: some went on in the same loop
    assert len(calls.read_text().split()) < len(results)
    for r in results:  # the optimizer's lr is the member's own, after every exploit too
        assert r.metrics["lr"] == pytest.approx(r.hparams["lr"])
    for e in exploits:  # the copy continues from the donor's step
        after = [r for r in results if r.member == e.member and r.id > e.result]
        if after:
            assert after[0].start == e.donor_step


@pytest.mark.parametrize("catch", [False, True])
def test_a_nan_report_is_retried_then_the_member_is_replaced(tmp_path, monkeypatch, catch):
    """A NaN loss fails the segment like an exception, even when the loop catches it."""
    monkeypatch.setenv("REGRESSION_NAN_ABOVE", "0.2")
    monkeypatch.setenv("REGRESSION_CATCH", "1" if catch else "0")
    initial = [{"lr": 0.01, "momentum": 0.5}, {"lr": 0.02, "momentum": 0.5},
               {"lr": 0.25, "momentum": 0.5}, {"lr": 0.03, "momentum": 0.5}]
    run(tmp_path, initial, executor="inline", retries=1, replace_failed=True,
        explore={"name": "perturb", "factors": [0.5]})  # the copy's lr stays under 0.2
    store = open_store(tmp_path / "fn.db")
    assert [(m.status, m.step) for m in store.members()] == [("done", 12)] * 4
    assert [e.member for e in store.events("retry")] == [2]
    (failed,) = store.events("failed")
    assert failed.member == 2 and failed.detail.startswith("score is nan at step 3")
    copy = [e for e in store.events("exploit") if e.member == 2 and e.id > failed.id][0]
    assert copy.donor != 2 and copy.before["lr"] == 0.25 and copy.after["lr"] < 0.2
    results = store.results()
    assert all(r.score is not None and r.hparams["lr"] < 0.2 for r in results)
    assert len(store.checkpoints(include_deleted=True)) == len(results)


def test_no_member_stays_leased_while_the_function_runs_after_its_loop(tmp_path, monkeypatch):
    """Handing the worker to another member ends the loop; what the function does after
    it is not heartbeaten, so the other member must not sit leased meanwhile."""
    monkeypatch.setenv("REGRESSION_AFTER_LOOP", str(tmp_path / "fn.db"))
    run(tmp_path, executor="inline", population=3)
    seen = [json.loads(line) for line in (tmp_path / "fn.db.after").read_text().splitlines()]
    assert len(seen) > 3  # the worker turned from member to member
    assert all("running" not in statuses for statuses in seen)


def test_member_seed_makes_an_inline_run_repeat(tmp_path):
    """regression_fn seeds its weights with member.seed: two runs store the same results."""
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        run(tmp_path / name, executor="inline")
        runs.append([(r.member, r.step, r.score) for r in
                     open_store(tmp_path / name / "fn.db").results()])
    assert runs[0] == runs[1]
