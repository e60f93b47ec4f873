"""The vectorized population: the same training as torch.optim alone, the same PBT as any
executor, the same store, and clear refusals of what vmap cannot run. Small models, so
the whole file runs in seconds on a CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
from support.paths import EXAMPLES, SCRIPTS
from support.runs import assert_counter_curves, curves

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import populace  # noqa: E402
from populace import Choice, ConfigError, Constant, Float  # noqa: E402
from populace.space import Space  # noqa: E402
from populace.store import Kind, open_store  # noqa: E402
from populace.testing import EXECUTOR_CHECKS, check_same_run, trace  # noqa: E402
from populace.vectorized import (  # noqa: E402
    SGD,
    Adam,
    AdamW,
    Dropout,
    Shuffled,
    VectorizedTrainable,
    hparam,
    load_best,
)
from populace.vectorized.population import Population  # noqa: E402

sys.path.insert(0, str(SCRIPTS))
import vector_counter  # noqa: E402

# where the equivalence tests train: the CPU, or the GPU that benchmarks/gpu.sh names
# (POPULACE_TEST_DEVICE=cuda), both sides of each comparison on it
DEVICE = torch.device(os.environ.get("POPULACE_TEST_DEVICE", "cpu"))
X = torch.randn(96, 4, generator=torch.Generator().manual_seed(0)).to(DEVICE)
Y = (X[:, 0] + X[:, 1] > 0).long()


class Tiny(VectorizedTrainable):
    optimizer = SGD(lr=0.1)

    def model(self, seed):
        return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), Dropout("dropout"), nn.Linear(8, 2))

    def data(self):
        return Shuffled(X, Y, batch_size=16)  # 6 steps an epoch

    def loss(self, output, batch, hparams):
        return F.cross_entropy(output, batch[1]) * hparams["scale"]

    def metrics(self, model):
        logits = model(X)
        return {"score": (logits.argmax(1) == Y).float().mean(),
                "loss": F.cross_entropy(logits, Y)}


class BatchNormed(Tiny):
    def model(self, seed):
        # no bias before the norm: its gradient is rounding noise, which Adam would scale up
        return nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.Tanh(),
                             nn.Linear(8, 2))


def population(optimizer, members, steps=0, kind=Tiny):
    """A population of `kind` with `optimizer` and each member's hparams, trained `steps`."""
    trainable = kind()
    trainable.optimizer = optimizer
    names = sorted({k for m in members for k in m})
    space = Space({n: Float(0.0, 1.0) for n in names})
    pop = Population(trainable, space, seeds=[11 + i for i in range(len(members))],
                     device=DEVICE)
    pop.hparams.set(list(range(len(members))), members)
    for _ in range(steps):
        pop.train()
    return pop


def alone(make_optimizer, hparams, seed, steps, kind=Tiny):
    """The member trained alone: its model from its seed, torch.optim, the same batches."""
    torch.manual_seed(seed)
    model = kind().model(seed).to(DEVICE)
    optimizer = make_optimizer(model.parameters(), hparams)
    data = Tiny().data().to(DEVICE)
    for step in range(steps):
        x, y = (t[0] for t in data.batches(np.array([seed]), np.array([step])))
        loss = F.cross_entropy(model(x), y) * hparams["scale"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def torch_sgd(nesterov):
    return lambda params, h: torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"],
                                             dampening=h["dampening"],
                                             weight_decay=h["weight_decay"], nesterov=nesterov)


def torch_adam(kind):
    return lambda params, h: kind(params, lr=h["lr"], betas=(h["beta1"], h["beta2"]),
                                  eps=h["eps"], weight_decay=h["weight_decay"])


SGD_MEMBERS = [
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-3},
    {"lr": 0.3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.2, "weight_decay": 1e-2},
]
NESTEROV_MEMBERS = [m for m in SGD_MEMBERS if m["dampening"] == 0 and m["momentum"] > 0]
ADAM_MEMBERS = [
    {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    {"lr": 3e-3, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-2},
    {"lr": 3e-2, "beta1": 0.5, "beta2": 0.9, "eps": 1e-4, "weight_decay": 0.1},
]
CASES = {
    "sgd-momentum": (SGD(), SGD_MEMBERS, torch_sgd(False)),
    "sgd-nesterov": (SGD(nesterov=True), NESTEROV_MEMBERS, torch_sgd(True)),
    "adam": (Adam(), ADAM_MEMBERS, torch_adam(torch.optim.Adam)),
    "adamw": (AdamW(), ADAM_MEMBERS, torch_adam(torch.optim.AdamW)),
}


@pytest.mark.parametrize("kind", [Tiny, BatchNormed], ids=["mlp", "batch-norm"])
@pytest.mark.parametrize("case", CASES)
def test_every_member_matches_the_same_member_trained_alone_by_torch_optim(case, kind):
    """Parameters and buffers (batch norm's running statistics: each member's own)."""
    optimizer, members, make = CASES[case]
    members = [{**m, "scale": 1.0, "dropout": 0.0} for m in members]
    steps = 20  # past three epochs: each member's own data order, epoch after epoch
    pop = population(optimizer, members, steps, kind)
    for i, hparams in enumerate(members):
        model = alone(make, hparams, 11 + i, steps, kind)
        for part, named in (("param", model.named_parameters()),
                            ("buffer", model.named_buffers())):
            for name, value in named:
                torch.testing.assert_close(pop.parts[part][name][i], value.detach(),
                                           rtol=1e-5, atol=1e-6, msg=f"member {i}, {name}")


def test_a_step_holds_its_gradients_and_batch_until_the_next_step_has_made_its_own():
    """Freed at once, a step's gradients and batch leave the heap's top free, glibc gives it
    back to the system and the next step faults it in again (at 128 digits members, 2 to 3
    times the page faults a step): the population holds them."""
    pop = population(SGD(), [{**m, "scale": 1.0, "dropout": 0.0} for m in SGD_MEMBERS], steps=1)
    grads, batch = pop._spent
    assert set(grads) == set(pop.parts["param"])
    assert all(g.shape == p.shape for g, p in zip(grads.values(), pop.parts["param"].values(),
                                                   strict=True))
    held = [weakref.ref(t) for t in [*grads.values(), *batch]]
    del grads, batch
    assert all(r() is not None for r in held)  # the population keeps them between steps
    pop.train()
    assert all(r() is None for r in held)  # and lets them go once the next step's exist


def test_an_exploit_copies_the_donors_slice_bit_for_bit_and_the_explored_hparams_train():
    members = [{**m, "scale": 1.0, "dropout": 0.0} for m in SGD_MEMBERS]
    pop = population(SGD(), members, steps=7)
    pop.take({0: 2})  # member 0 copies member 2
    for part, tensors in pop.parts.items():
        for name, stacked in tensors.items():
            assert torch.equal(stacked[0], stacked[2]), f"{part}/{name}"
    assert pop.keys[0] == pop.keys[2] and pop.steps[0] == pop.steps[2]
    explored = {**members[2], "lr": 0.2}
    pop.hparams.set([0], [explored])
    donor = {name: t[2].clone() for name, t in pop.parts["param"].items()}
    buffers = {name: pop.parts["optimizer"][f"momentum/{name}"][2].clone() for name in donor}
    pop.train(np.array([0]))
    # one torch.optim step from the donor's state, with the explored lr
    model = Tiny().model(0).to(DEVICE)
    model.load_state_dict(donor, strict=False)
    optimizer = torch_sgd(False)(model.parameters(), explored)
    for name, p in model.named_parameters():
        optimizer.state[p]["momentum_buffer"] = buffers[name]
    x, y = (t[0] for t in pop.data.batches(pop.keys[:1], pop.steps[:1] - 1))
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    for name, value in model.named_parameters():
        torch.testing.assert_close(pop.parts["param"][name][0], value.detach(), rtol=1e-5,
                                   atol=1e-6)
    assert torch.equal(pop.parts["param"]["0.weight"][2], donor["0.weight"])  # untouched


SETTINGS = {
    "truncation": {}, "random search": {"exploit": "none"}, "synch": {"synch": True},
    "burn-in": {"burn_in": 12}, "tournament": {"exploit": "tournament"},
    "ttest": {"exploit": "ttest"}, "resample": {"explore": "resample"},
    "perturb-or-resample": {"explore": "perturb-or-resample"},
    "noise": {"explore": {"name": "noise", "scale": 0.1}}, "keep": {"explore": "keep"},
    "explore only": {"exploit": "own"},
    # FIRE-PBT: evaluators copy parents and train with a child's hparams, as any member;
    # synchronous, since asynchronously the evaluators joining mid-run are reported in
    # another order than one inline worker's (test_an_asynchronous_fire_run_finishes)
    "fire": {"exploit": {"name": "fire", "start": 1}, "synch": True},
}


@pytest.mark.parametrize("setting", SETTINGS)
def test_a_vectorized_run_is_the_run_one_inline_worker_trains(tmp_path, setting):
    """Decision for decision: the same results, exploits, waits and lineage as the same
    members trained alone by torch.optim on the inline executor."""
    settings = {**vector_counter.config, "population": 8, "steps": 40, **SETTINGS[setting]}
    runs = {}
    for name, trainable, executor in (("inline", vector_counter.CounterAlone, "inline"),
                                      ("vectorized", vector_counter.VectorCounter,
                                       "vectorized")):
        url = str(tmp_path / f"{name}.db")
        device = {"device": str(DEVICE)} if executor == "vectorized" else {}
        populace.run(trainable, vector_counter.space, store=url, progress=False,
                     **{**settings, "executor": executor, **device})
        store = open_store(url)
        try:
            for check in EXECUTOR_CHECKS:
                check(store)
            runs[name] = trace(store)
        finally:
            store.close()
    if setting != "random search":
        assert runs["inline"].events, "the run makes decisions: they are compared too"
    check_same_run(runs["inline"], runs["vectorized"], "the vectorized run")


def test_an_asynchronous_fire_run_finishes_with_evaluations(tmp_path):
    url = str(tmp_path / "fire.db")
    populace.run(vector_counter.VectorCounter, vector_counter.space, store=url, progress=False,
                 **{**vector_counter.config, "population": 8, "steps": 40,
                    "exploit": {"name": "fire", "start": 1}})
    store = open_store(url)
    for check in EXECUTOR_CHECKS:
        check(store)
    assert store.events(Kind.EVALUATION) and store.events(Kind.STOPPED)


def test_a_vectorized_fire_run_records_points_inside_each_segment(tmp_path):
    """FIRE's `points`: the members at a mark are evaluated together mid-segment, and the
    run is still the one an inline worker trains (test_a_vectorized_run_is_the_run_...)."""
    settings = {**vector_counter.config, "population": 8, "steps": 40, "synch": True,
                "exploit": {"name": "fire", "start": 1, "points": 2, "budget": 4}}
    runs = {}
    for name, trainable in (("inline", vector_counter.CounterAlone),
                            ("vectorized", vector_counter.VectorCounter)):
        url = str(tmp_path / f"{name}.db")
        populace.run(trainable, vector_counter.space, store=url, progress=False,
                     **{**settings, "executor": name})
        store = open_store(url)
        for check in EXECUTOR_CHECKS:
            check(store)
        assert_counter_curves(store, every=2)
        runs[name] = (trace(store), curves(store))
        store.close()
    check_same_run(runs["inline"][0], runs["vectorized"][0], "the vectorized run")
    assert runs["inline"][1] == runs["vectorized"][1]


def test_a_run_stores_what_status_report_and_load_best_read(tmp_path):
    space = {"lr": Float(0.01, 0.5, log=True), "momentum": Float(0.0, 0.9),
             "dropout": Float(0.0, 0.3), "scale": Constant(1.0)}
    result = populace.run(Tiny, space, store=tmp_path / "run.db", progress=False,
                          population=6, steps=24, ready_steps=6, executor="vectorized",
                          device="cpu")
    store = open_store(tmp_path / "run.db")
    try:
        members = store.members()
        assert [m.step for m in members] == [24] * 6
        assert store.events(Kind.EXPLOIT), "truncation copies the worst member"
        keys = {c.key for c in store.checkpoints()}
        assert len(keys) < len(store.checkpoints()), "members ready together share a file"
        for check in EXECUTOR_CHECKS:
            check(store)
    finally:
        store.close()
    model = load_best(result, Tiny().model(0)).eval()
    with torch.no_grad():
        accuracy = (model(X).argmax(1) == Y).float().mean().item()
    assert accuracy == pytest.approx(result.score)
    assert result.schedule[-1].hparams == result.best.hparams


def test_a_member_whose_score_is_not_finite_fails_alone(tmp_path):
    # a scale past float32's largest number makes member 1's loss infinite, its weights NaN
    space = {"scale": Float(1.0, 1e39, log=True), "dropout": Constant(0.0)}
    initial = [{"scale": scale, "dropout": 0.0} for scale in (1.0, 1e39, 1.0, 2.0)]
    populace.run(Tiny, space, store=tmp_path / "run.db", progress=False, initial=initial,
                 population=4, steps=12, ready_steps=6, score="loss", mode="min",
                 exploit="none", executor="vectorized")
    store = open_store(tmp_path / "run.db")
    try:
        members = {m.id: m for m in store.members()}
        assert str(members[1].status) == "failed" and "not a finite number" in members[1].error
        assert [members[m].step for m in (0, 2, 3)] == [12] * 3
        assert not store.results(1), "a diverged state is never stored"
    finally:
        store.close()


def test_a_run_killed_midway_resumes_to_the_end(tmp_path):
    config = tmp_path / "lease.toml"
    config.write_text("lease_seconds = 1\n")
    store = tmp_path / "run.db"
    command = [sys.executable, "-m", "populace.cli", "run", str(SCRIPTS / "vector_counter.py"),
               "--store", str(store), "--config", str(config), "--quiet"]
    env = {**os.environ, "VECTOR_COUNTER_SLEEP": "0.05"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill it once some members reported
        time.sleep(0.2)
        if store.exists():
            db = open_store(store)
            reported = len(db.results()) if db.exists() else 0
            db.close()
            if reported >= 4:
                break
    first.send_signal(signal.SIGKILL)
    first.wait()
    db = open_store(store)
    left = [m.id for m in db.members() if m.step < 20]
    db.close()
    assert left, "killed midway: members are left to train"
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    db = open_store(store)
    try:
        for check in EXECUTOR_CHECKS:
            check(db)
    finally:
        db.close()


def test_a_populace_worker_that_joins_trains_as_a_second_vectorized_worker(tmp_path):
    store = tmp_path / "run.db"
    env = {**os.environ, "VECTOR_COUNTER_SLEEP": "0.02"}
    cli = [sys.executable, "-m", "populace.cli"]
    head = subprocess.Popen([*cli, "run", str(SCRIPTS / "vector_counter.py"), "--store",
                             str(store), "--quiet"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    worker = subprocess.Popen([*cli, "worker", "--store", str(store)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=120)[0] for p in (head, worker)]
    assert [head.returncode, worker.returncode] == [0, 0], outputs
    db = open_store(store)
    try:
        for check in EXECUTOR_CHECKS:
            check(db)
        assert not db.events(Kind.FAILED)
    finally:
        db.close()


class Branching(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class Branches(Tiny):
    def model(self, seed):
        return nn.Sequential(nn.Linear(4, 8), Branching(), nn.Linear(8, 2))


class Shifted(nn.Module):
    def forward(self, x):
        shift = torch.zeros(x.shape[-1])
        shift.add_(x.mean(0))  # one member's value, written into a tensor made for all
        return x + shift


class InPlace(Tiny):
    def model(self, seed):
        return nn.Sequential(nn.Linear(4, 8), Shifted(), nn.Linear(8, 2))


class Items(Tiny):
    def metrics(self, model):
        return {"score": (model(X).argmax(1) == Y).float().mean().item()}


class OtherRate(Tiny):
    def model(self, seed):
        return nn.Sequential(nn.Linear(4, 8), Dropout("rate"), nn.Linear(8, 2))


class PerExample(Tiny):
    def loss(self, output, batch, hparams):
        return F.cross_entropy(output, batch[1], reduction="none")  # one a batch example


# where a refusal of what cannot batch sends the user: the local executor, and the table
LOCAL = ["train the run with the local executor (--executor local", "\"Which hparams batch\""]


@pytest.mark.parametrize("trainable, says", [
    (OtherRate, ["layer 1 (Dropout) reads hparam 'rate', which the run's space lacks"]),
    (Branches, ["layer 1 (Branching)", "torch.where", *LOCAL]),
    (InPlace, ["layer 1 (Shifted)", "out of place", *LOCAL]),
    (Items, ["the trainable's metrics", "return tensors"]),
    (PerExample, ["the trainable's loss must be one number per member", "shape (16,)"]),
])
def test_a_model_vmap_cannot_run_is_refused_before_training_naming_the_layer(trainable, says):
    with pytest.raises(ConfigError) as refused:
        trainable().build({"scale": 1.0, "dropout": 0.0}, seed=0)
    for words in says:
        assert words in str(refused.value)


@pytest.mark.parametrize("space, says", [
    ({"scale": Float(0.5, 1), "dropout": Constant(0.0), "batch_size": Choice([16, 32])},
     ["hparam 'batch_size' has no target", "batch size", *LOCAL]),
    ({"scale": Float(0.5, 1), "dropout": Constant(0.0), "act": Choice(["relu", "tanh"])},
     ["hparam 'act'", "one number per member", *LOCAL]),
])
def test_hparams_a_vectorized_run_cannot_hold_are_refused_by_name(space, says):
    with pytest.raises(ConfigError) as refused:
        Population(Tiny(), Space(space), seeds=[0, 1]).check(
            {name: d.sample(np.random.default_rng(0)) for name, d in Space(space).items()})
    for words in says:
        assert words in str(refused.value)


def test_steps_train_in_training_mode_and_evaluations_in_eval_mode_however_base_was_left():
    # the mode is set when it changes, not walked over every layer at every step: a mode
    # changed on the skeleton by anyone else is set right again at the next call
    space = Space({"scale": Float(0.5, 1), "dropout": Constant(0.5)})
    pop = Population(Tiny(), space, seeds=[0, 1])
    pop.hparams.set([0, 1], [{"scale": 0.7, "dropout": 0.5}] * 2)
    dropout = next(m for m in pop.functional.base.modules() if isinstance(m, Dropout))
    modes: list[bool] = []
    dropout.register_forward_pre_hook(lambda layer, args: modes.append(layer.training))
    seen = []

    def evaluate():
        pop.evaluate(np.arange(2))

    for call in (pop.train, pop.functional.base.eval, pop.train, evaluate,
                 pop.functional.base.train, evaluate):
        modes.clear()
        call()
        seen.append(set(modes))
    assert seen == [{True}, set(), {True}, {False}, set(), {False}]


class PlainOptimizer(Tiny):
    optimizer = torch.optim.SGD  # torch's, which cannot hold a population's state


class TupleData(Tiny):
    def data(self):
        return X, Y


@pytest.mark.parametrize("trainable, says", [
    (PlainOptimizer, "PlainOptimizer.optimizer must be a stacked optimizer"),
    (TupleData, "TupleData.data must return a data source"),
])
def test_a_trainable_with_the_wrong_parts_is_refused_by_name(trainable, says):
    with pytest.raises(ConfigError, match=says):
        trainable().build({"scale": 1.0, "dropout": 0.0}, seed=0)


def test_hparam_reads_the_members_value_in_a_run_and_the_default_outside():
    assert hparam("dropout", 0.25) == 0.25
    with pytest.raises(KeyError, match="no default"):
        hparam("dropout")


def test_a_device_that_is_not_here_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="device"):
        populace.RunConfig(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available here"):
            populace.run(vector_counter.VectorCounter, vector_counter.space,
                         store=tmp_path / "run.db", progress=False,
                         **{**vector_counter.config, "device": "cuda"})


@pytest.mark.parametrize("example", ["digits_vectorized.py", "digits_cnn_vectorized.py"])
def test_an_example_runs_from_the_cli_and_its_run_reports_and_replays(tmp_path, example):
    """The README's two vectorized examples at a tiny size, then status, report and replay
    on the run they made: a vectorized run is read like any other."""
    store = tmp_path / "run.db"
    cli = [sys.executable, "-m", "populace.cli"]
    script = EXAMPLES / example
    tiny = ["--population", "4", "--steps", "16", "--ready-steps", "8", "--device", "cpu"]
    for command in ([*cli, "run", str(script), "--store", str(store), *tiny, "--quiet"],
                    [*cli, "status", str(store), "--json"],
                    [*cli, "report", str(store)],
                    [*cli, "replay", str(store), "--quiet"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert (tmp_path / "run.report" / "report.html").exists()
    result, replayed = populace.load_result(store), populace.load_result(tmp_path / "run.replay.db")
    assert {m.step for m in result.members} == {16}
    assert 0.3 < result.score <= 1 and 0.3 < replayed.score <= 1, "a few steps learn digits"


class OneThread(Tiny):
    threads = 1


class NoThreads(Tiny):
    threads = 0


def test_a_vectorized_run_takes_every_core_it_is_given_unless_told_threads():
    from populace.vectorized.run import threads_for

    assert threads_for(Tiny) == len(os.sched_getaffinity(0))
    assert threads_for(OneThread) == 1
    with pytest.raises(ConfigError, match=r"NoThreads.*threads.*an int in \[1, 4,096\].*0"):
        threads_for(NoThreads)


class Anywhere(Tiny):
    pass


def test_a_plain_member_on_auto_trains_where_torch_sees_a_device():
    from populace.vectorized.plain import PlainMember

    class Alone(PlainMember):
        vectorized = Anywhere
        device = "auto"

    member = Alone()
    member.build({"scale": 1.0, "dropout": 0.0, "lr": 0.1}, seed=3)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(member.model.parameters()).device.type == want
    assert {t.device.type for t in member.hparams.values()} == {want}
    member.step()  # its batch, hparams and model on one device


class OneThreadCounter(vector_counter.VectorCounter):
    threads = 1


def test_the_run_trains_with_the_trainables_threads(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    seen = []
    train = Population.train

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Population, "train", spy)
    torch.set_num_threads(2)
    try:
        populace.run(OneThreadCounter, vector_counter.space, store=str(tmp_path / "run.db"),
                     progress=False, **{**vector_counter.config, "population": 4, "steps": 8,
                                        "executor": "vectorized"})
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
