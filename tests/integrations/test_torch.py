"""Tests for the PyTorch integration: checkpoints, RNG, and hparams that survive an exploit."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.paths import EXAMPLES
from torch import nn

import populace
from populace import Float
from populace.errors import ConfigError
from populace.integrations.torch import (
    PickledCheckpoint,
    TorchTrainable,
    apply_hparams,
    load_objects,
    load_state,
    save_state,
)
from populace.script import load_script
from populace.store import open_store

DIGITS = EXAMPLES / "digits_mlp.py"
HPARAMS_A = {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-4, "dropout": 0.1}
HPARAMS_B = {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3, "dropout": 0.3}


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The same synthetic regression data for every member."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [3.0], [0.5]])


class Net(TorchTrainable):
    """A small regression net with dropout, trained by SGD with momentum."""

    state = ("model", "optimizer")
    modules = {"dropout": ("model", nn.Dropout, "p")}

    def build(self, hparams, seed):
        torch.manual_seed(seed)
        self.x, self.y = _data()
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(), nn.Linear(16, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)

    def step(self):
        self.model.train()
        loss = nn.functional.mse_loss(self.model(self.x), self.y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def evaluate(self):
        self.model.eval()
        return -nn.functional.mse_loss(self.model(self.x), self.y).item()


class Linear(Net):
    """Linear regression for the end-to-end runs: no dropout, so only lr is tuned."""

    modules = {}

    def build(self, hparams, seed):
        torch.manual_seed(seed)
        self.x, self.y = _data()
        self.model = nn.Linear(4, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=hparams["lr"])
        self.apply(hparams)


def _trained(hparams: dict, seed: int, steps: int = 3) -> Net:
    net = Net()
    net.build(hparams, seed)
    for _ in range(steps):
        net.step()
    return net


def _groups(optimizer: torch.optim.Optimizer, *keys: str) -> list[dict]:
    return [{k: g[k] for k in keys} for g in optimizer.param_groups]


def test_exploit_copies_donor_state_and_keeps_explored_hparams(tmp_path: Path) -> None:
    donor = _trained(HPARAMS_B, seed=2)
    donor.save(tmp_path / "b.ckpt")
    _trained(HPARAMS_A, seed=1)  # member A trained on its own before the exploit
    explored = {"lr": 0.06, "momentum": 0.6, "weight_decay": 2e-4, "dropout": 0.2}

    # what the worker does: build with the explored hparams, load the donor, apply
    member = Net()
    member.build(explored, seed=1)
    member.load(tmp_path / "b.ckpt")
    # the Ray Tune bug: the donor's optimizer state brings the donor's hparams back
    assert _groups(member.optimizer, "lr", "momentum") == _groups(donor.optimizer, "lr", "momentum")
    member.apply(explored)

    for mine, theirs in zip(member.model.parameters(), donor.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
        assert torch.equal(member.optimizer.state[mine]["momentum_buffer"],
                           donor.optimizer.state[theirs]["momentum_buffer"])
    keys = ("lr", "momentum", "weight_decay")
    assert _groups(member.optimizer, *keys) == [{k: explored[k] for k in keys}]
    assert [m.p for m in member.model.modules() if isinstance(m, nn.Dropout)] == [0.2]


def test_adam_state_and_betas_round_trip(tmp_path: Path) -> None:
    model = nn.Linear(4, 1)
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = _data()
    for _ in range(3):
        adam.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        adam.step()
    save_state(tmp_path / "s.ckpt", model=model, optimizer=adam)

    copy = nn.Linear(4, 1)
    copy_adam = torch.optim.Adam(copy.parameters(), lr=0.5)
    load_state(tmp_path / "s.ckpt", model=copy, optimizer=copy_adam)
    apply_hparams({"lr": 0.002, "betas": [0.8, 0.95], "eps": 1e-6}, optimizers=[copy_adam])

    for mine, theirs in zip(copy.parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(copy_adam.state[mine][key], adam.state[theirs][key])
    assert _groups(copy_adam, "lr", "betas", "eps") == [
        {"lr": 0.002, "betas": (0.8, 0.95), "eps": 1e-6}
    ]
    with pytest.raises(ConfigError, match="'betas' must be a list of 2 numbers"):
        apply_hparams({"betas": 0.9}, optimizers=[copy_adam])


def test_rng_states_round_trip(tmp_path: Path) -> None:
    save_state(tmp_path / "rng.ckpt")
    expected = (torch.rand(3), np.random.rand(3), np.random.randn(3), random.random(),
                random.gauss(0, 1))
    load_state(tmp_path / "rng.ckpt")
    again = (torch.rand(3), np.random.rand(3), np.random.randn(3), random.random(),
             random.gauss(0, 1))
    assert torch.equal(expected[0], again[0])
    np.testing.assert_array_equal(expected[1], again[1])
    np.testing.assert_array_equal(expected[2], again[2])
    assert expected[3:] == again[3:]


def test_scheduler_and_grad_scaler_round_trip_in_a_weights_only_file(tmp_path: Path) -> None:
    model = nn.Linear(4, 1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    for _ in range(5):
        sgd.step()
        scheduler.step()
    scaler.scale(torch.tensor(1.0))  # the scale is created lazily, on first use
    scaler.update(new_scale=256.0)
    path = tmp_path / "s.ckpt"
    save_state(path, model=model, optimizer=sgd, scheduler=scheduler, scaler=scaler)

    saved = torch.load(path, weights_only=True)  # no pickled objects in the file
    assert set(saved["objects"]) == {"model", "optimizer", "scheduler", "scaler"}

    sgd2 = torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.StepLR(sgd2, step_size=2, gamma=0.5)
    scaler2 = torch.amp.GradScaler("cpu")
    load_state(path, model=nn.Linear(4, 1), optimizer=sgd2, scheduler=scheduler2, scaler=scaler2)
    assert scheduler2.state_dict() == scheduler.state_dict()
    assert scaler2.state_dict() == scaler.state_dict()
    assert scaler2.get_scale() == 256.0
    assert sgd2.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


@pytest.mark.parametrize("kind", ["step", "lambda"])
def test_explored_lr_is_the_schedules_base_lr(kind: str) -> None:
    sgd = torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    if kind == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=2, gamma=0.5)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda epoch: 0.5 ** (epoch // 2))
    for _ in range(4):
        sgd.step()
        scheduler.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.025)

    apply_hparams({"lr": 0.2}, optimizers=[sgd], schedulers=[scheduler])
    # the decay reached so far (x0.25) carries over to the new base, and survives the next steps
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05)
    assert scheduler.base_lrs == [0.2]
    for _ in range(2):
        sgd.step()
        scheduler.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.025)


def test_lr_under_a_scheduler_not_given_is_refused() -> None:
    sgd = torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    torch.optim.lr_scheduler.StepLR(sgd, step_size=2)
    with pytest.raises(ConfigError, match="'lr'.*LR scheduler"):
        apply_hparams({"lr": 0.2}, optimizers=[sgd])


def test_hparams_without_a_target_are_refused_unless_ignored() -> None:
    sgd = torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="'batch_size' has no target.*momentum"):
        apply_hparams({"lr": 0.2, "batch_size": 32}, optimizers=[sgd])
    apply_hparams({"lr": 0.2, "batch_size": 32}, optimizers=[sgd], ignore=["batch_size"])
    assert sgd.param_groups[0]["lr"] == 0.2
    with pytest.raises(ConfigError, match="'params' has no target"):
        apply_hparams({"params": []}, optimizers=[sgd])


def test_module_targets_must_exist() -> None:
    model = nn.Linear(4, 1)
    with pytest.raises(ConfigError, match="'dropout'.*no Dropout submodule"):
        apply_hparams({"dropout": 0.1}, modules={"dropout": (model, nn.Dropout, "p")})
    with pytest.raises(ConfigError, match="'dropout'.*no attribute 'rate'"):
        apply_hparams({"dropout": 0.1}, modules={"dropout": (nn.Dropout(), nn.Dropout, "rate")})


def test_load_refuses_missing_and_extra_names(tmp_path: Path) -> None:
    model, sgd = nn.Linear(4, 1), torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    save_state(tmp_path / "s.ckpt", model=model, optimizer=sgd)
    with pytest.raises(ValueError, match="optimizer: checkpoint .* holds it but it was not given"):
        load_state(tmp_path / "s.ckpt", model=model)
    with pytest.raises(ValueError, match="scaler: not in checkpoint"):
        load_state(tmp_path / "s.ckpt", model=model, optimizer=sgd,
                   scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(TypeError, match="model: must have state_dict"):
        save_state(tmp_path / "t.ckpt", model=object())


class Note:
    """A user's own class: torch can store it only as a pickled object."""

    def __init__(self, value: int) -> None:
        self.value = value


class Tally:
    """A stateful object whose state dict holds a `Note`."""

    def __init__(self, value: int = 0) -> None:
        self.note = Note(value)

    def state_dict(self) -> dict:
        return {"note": self.note}

    def load_state_dict(self, state: dict) -> None:
        self.note = state["note"]


class Payload:
    """Unpickling this runs code: it opens (creates) the file it names."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class TalliedNet(Net):
    state = ("model", "optimizer", "tally")

    def build(self, hparams, seed):
        self.tally = Tally()
        super().build(hparams, seed)


def test_a_checkpoint_holding_pickled_objects_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "p.ckpt"
    save_state(path, model=nn.Linear(4, 1), tally=Tally(7))
    fresh = Tally()
    with pytest.raises(PickledCheckpoint) as refused:
        load_state(path, model=nn.Linear(4, 1), tally=fresh)
    message = str(refused.value)
    # names the file, what was refused, and how to allow it
    assert str(path) in message and "Note" in message and "allow_pickle=True" in message
    assert fresh.note.value == 0  # nothing was loaded
    load_state(path, allow_pickle=True, model=nn.Linear(4, 1), tally=fresh)
    assert fresh.note.value == 7


def test_a_refused_checkpoint_runs_none_of_its_code(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "evil.ckpt"
    torch.save({"objects": {"model": {"weight": Payload(marker)}}, "rng": {}}, path)
    with pytest.raises(PickledCheckpoint, match="evil.ckpt"):
        load_state(path, model=nn.Linear(4, 1))
    assert not marker.exists()


def test_a_torch_trainable_loads_pickled_objects_only_when_it_allows_them(tmp_path: Path) -> None:
    donor = TalliedNet()
    donor.build(HPARAMS_A, seed=1)
    donor.tally = Tally(5)
    donor.save(tmp_path / "t.ckpt")
    member = TalliedNet()
    member.build(HPARAMS_A, seed=2)
    with pytest.raises(PickledCheckpoint, match="allow_pickle = True"):
        member.load(tmp_path / "t.ckpt")
    trusting = type("Trusting", (TalliedNet,), {"allow_pickle": True})()
    trusting.build(HPARAMS_A, seed=2)
    trusting.load(tmp_path / "t.ckpt")
    assert trusting.tally.note.value == 5
    for a, b in zip(trusting.model.parameters(), donor.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_one_torch_thread_per_worker_unless_opted_out() -> None:
    before = torch.get_num_threads()
    try:
        Net()
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        type("Threaded", (Net,), {"threads": None})()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_importing_populace_does_not_import_torch() -> None:
    code = "import sys, populace; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_digits_example_member_trains_and_round_trips(tmp_path: Path) -> None:
    script = load_script(DIGITS)
    hparams = script.space.sample(np.random.default_rng(0))
    member = script.trainable()
    member.build(hparams, seed=3)
    member.step()
    metrics = member.evaluate()
    assert set(metrics) == {"accuracy", "loss", "test_accuracy"}
    assert script.config["score"] == "accuracy"
    member.save(tmp_path / "m.ckpt")
    copy = script.trainable()
    copy.build(hparams, seed=4)
    copy.load(tmp_path / "m.ckpt")
    copy.apply(hparams)
    assert copy.evaluate() == metrics


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_torch_run_end_to_end(tmp_path: Path, executor: str) -> None:
    # the local executor spawns workers: they import Linear from this module by reference
    result = populace.run(
        Linear, {"lr": Float(1e-4, 0.1, log=True)}, store=tmp_path / "run.db",
        # two members that can hardly learn are the bottom half at every ready point
        initial=[{"lr": 1e-4}, {"lr": 0.1}, {"lr": 1e-4}, {"lr": 0.1}],
        exploit={"name": "truncation", "fraction": 0.5},
        population=4, steps=8, ready_steps=2, executor=executor, workers=2, progress=False,
    )
    assert [m.step for m in result.members] == [8] * 4
    assert {m.status for m in result.members} == {"done"}
    assert result.checkpoint is not None and result.checkpoint.is_file()
    store = open_store(tmp_path / "run.db")
    try:
        assert store.events("exploit")
    finally:
        store.close()


def test_the_best_model_loads_without_its_optimizer_or_the_members_rng(tmp_path: Path) -> None:
    model, sgd = nn.Linear(4, 1), torch.optim.SGD(nn.Linear(4, 1).parameters(), lr=0.1)
    torch.manual_seed(1)
    save_state(tmp_path / "s.ckpt", model=model, optimizer=sgd)
    torch.manual_seed(2)
    expected = torch.rand(3)
    torch.manual_seed(2)
    fresh = nn.Linear(4, 1)
    torch.manual_seed(2)
    load_objects(tmp_path / "s.ckpt", model=fresh)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(),
                                                  strict=True))
    assert torch.equal(torch.rand(3), expected)  # the caller's random state, untouched
    with pytest.raises(ValueError, match="scaler: not in checkpoint"):
        load_objects(tmp_path / "s.ckpt", scaler=torch.amp.GradScaler("cpu"))
