"""Lightning members: Lightning's own checkpoint, and the explored hparams in force after it.

The bug PBT users of Lightning hit through Ray Tune (Lightning #12812): restoring a
checkpoint brings back the donor's lr, which silently overrides the explored one.
Here a copy's weights and optimizer state are the donor's, and the lr its optimizer
uses in the next batch is the explored one.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from support.integrations import (
    assert_example_trains_on_ray,
    assert_loop_ends_when_dropped,
    assert_segments_used,
)
from support.paths import EXAMPLES
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from populace import Choice, Float, run
from populace.integrations.lightning import LightningTrainable

EXAMPLE = EXAMPLES / "lightning_classifier.py"


def blobs(seed: int, n: int = 256) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + 1.5 * y[:, None].float()
    return TensorDataset(x, y)


class Net(pl.LightningModule):
    """A small classifier that logs the lr its optimizer used in each epoch's first batch."""

    def __init__(self, lr: float, dropout: float, scheduler: bool = False) -> None:
        super().__init__()
        self.lr, self.scheduler = lr, scheduler
        self.layers = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout),
                                    nn.Linear(16, 2))
        self.used: list[float] = []  # the lr of every batch trained

    def training_step(self, batch, index):
        lr = self.optimizers().param_groups[0]["lr"]
        self.used.append(lr)
        if index == 0:
            self.log("first_lr", lr, on_step=False, on_epoch=True)
        x, y = batch
        return nn.functional.cross_entropy(self.layers(x), y)

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_acc", (self.layers(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if not self.scheduler:
            return optimizer
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)]


class Member(LightningTrainable):
    modules = {"dropout": (nn.Dropout, "p")}
    ignore = ("batch_size",)
    trainer_args = {"accelerator": "cpu"}
    scheduler = False

    def module(self, hparams):
        return Net(hparams["lr"], hparams["dropout"], self.scheduler)

    def data(self, hparams):
        return (DataLoader(blobs(0), batch_size=hparams["batch_size"], shuffle=True),
                DataLoader(blobs(1), batch_size=128))


class Scheduled(Member):
    scheduler = True


class Short(Member):
    batches = 3


HPARAMS = {"lr": 0.1, "dropout": 0.1, "batch_size": 32}


def trained(kind: type[Member], steps: int, hparams: dict = HPARAMS) -> Member:
    member = kind()
    member.build(hparams, seed=1)
    for _ in range(steps):
        member.step()
    return member


@pytest.mark.parametrize("kind", [Member, Scheduled])
def test_a_copy_has_the_donors_state_and_trains_with_its_explored_lr(kind, tmp_path):
    donor = trained(kind, 2)
    path = tmp_path / "donor.ckpt"
    donor.save(path)

    copy = kind()
    copy.build({**HPARAMS, "lr": 0.01, "dropout": 0.3}, seed=2)  # its own, before the copy
    copy.load(path)
    copy.reseed(3)
    explored = {**HPARAMS, "lr": 0.05, "dropout": 0.2}
    copy.apply(explored)
    for name, tensor in donor.model.state_dict().items():
        assert torch.equal(copy.model.state_dict()[name], tensor), name
    momentum = [s["momentum_buffer"] for s in copy.trainer.optimizers[0].state.values()]
    assert momentum and all(torch.equal(a, s["momentum_buffer"]) for a, s in zip(
        momentum, donor.trainer.optimizers[0].state.values(), strict=True))
    assert copy.trainer.current_epoch == 2  # Lightning's loops were restored too

    copy.step()
    decayed = 0.5 ** 2 if kind is Scheduled else 1.0  # the schedule's progress carries over
    assert copy.model.used[0] == pytest.approx(0.05 * decayed)
    assert {m.p for m in copy.model.modules() if isinstance(m, nn.Dropout)} == {0.2}
    assert 0.0 <= copy.evaluate()["val_acc"] <= 1.0


def test_apply_between_steps_is_in_force_at_the_next_batch():
    member = trained(Member, 1)
    member.apply({**HPARAMS, "lr": 0.02})
    member.step()
    assert member.model.used[-1] == 0.02
    assert member.evaluate()["first_lr"] == pytest.approx(0.02)


def test_steps_of_batches_go_on_across_epochs_and_resume_mid_epoch(tmp_path):
    member = trained(Short, 2)  # epochs of 256 / 32 = 8 batches
    assert len(member.model.used) == 6 and member.trainer.current_epoch == 0
    member.save(tmp_path / "mid.ckpt")
    member.step()  # batches 7 and 8 end epoch 0, batch 9 is epoch 1's first
    assert len(member.model.used) == 9 and member.trainer.current_epoch == 1
    assert 0.0 <= member.evaluate()["val_acc"] <= 1.0

    copy = Short()
    copy.build(HPARAMS, seed=1)
    copy.load(tmp_path / "mid.ckpt")
    copy.apply(HPARAMS)
    copy.step()
    assert len(copy.model.used) == 3 and copy.trainer.global_step == 9


def test_a_fresh_member_evaluates_and_saves_before_training(tmp_path):
    member = Member()
    member.build(HPARAMS, seed=0)
    assert 0.0 <= member.evaluate()["val_acc"] <= 1.0  # what populace's preflight asks
    member.save(tmp_path / "fresh.ckpt")
    copy = Member()
    copy.build(HPARAMS, seed=0)
    copy.load(tmp_path / "fresh.ckpt")
    copy.step()
    assert len(copy.model.used) == 256 // 32  # one epoch, from the file's start of training
    assert copy.trainer.fit_loop.epoch_progress.current.processed == 1


def test_a_member_no_one_holds_ends_its_loop():
    assert_loop_ends_when_dropped(trained(Member, 1))


def test_a_pbt_run_trains_each_segment_with_the_hparams_in_force(tmp_path):
    store = tmp_path / "run.db"
    result = run(Member, {"lr": Float(0.01, 0.3, log=True), "dropout": Float(0.0, 0.5),
                          "batch_size": Choice([16, 32])},
                 store=store, population=4, steps=4, ready_steps=1, executor="inline",
                 score="val_acc", progress=False, seed=3)
    # the lr the optimizer used, logged by the module, is the one populace had in force,
    # in every segment, those right after a copy of a donor with another lr included
    assert_segments_used(store, "first_lr", "lr")
    assert result.best.step == 4


def test_the_example_trains_on_ray_workers(tmp_path):
    assert_example_trains_on_ray(EXAMPLE, tmp_path)
