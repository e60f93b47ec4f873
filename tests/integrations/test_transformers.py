"""Transformers members: the Trainer's own checkpoint, the explored hparams in force after it.

The example's tiny BERT (random weights, from a config) and word-level tokenizer
classify made-up sentences; nothing is downloaded. A copy's weights, optimizer and
step are the donor's, and its next optimizer step uses the explored learning rate
on the schedule rebuilt for it (transformers #10247 and #9873: checkpoint errors
PBT users met through Ray Tune).
"""

from __future__ import annotations

import pytest
import torch
from support.integrations import (
    assert_example_trains_on_ray,
    assert_loop_ends_when_dropped,
    assert_segments_used,
)
from support.paths import EXAMPLES
from torch import nn
from transformers import TrainerCallback

from populace import Choice, ConfigError, Float, run
from populace.script import load_script

EXAMPLE = EXAMPLES / "transformers_sentiment.py"
Sentiment = load_script(EXAMPLE).trainable  # the example's tiny BERT, tokenizer and task
example = __import__(Sentiment.__module__)


class LRs(TrainerCallback):
    """The lr of every optimizer step, read from the optimizer as it steps."""

    def __init__(self) -> None:
        self.used: list[float] = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.used.append(optimizer.param_groups[0]["lr"])


class Member(Sentiment):
    batches = 2
    args = {"max_steps": 12, "per_device_eval_batch_size": 64, "use_cpu": True,
            "lr_scheduler_type": "linear"}
    modules = {"dropout": (nn.Dropout, "p")}

    def datasets(self, hparams):
        return example.sentences(128, 0), example.sentences(64, 1)

    def build(self, hparams, seed):
        super().build(hparams, seed)
        self.lrs = LRs()
        self.trainer.add_callback(self.lrs)


HPARAMS = {"learning_rate": 1e-3, "weight_decay": 0.0, "warmup_steps": 0.25,
           "per_device_train_batch_size": 16, "dropout": 0.1}


def linear(step: int, warmup: int, total: int) -> float:
    """Transformers' linear schedule with warmup, as its documentation defines it."""
    return step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))


def test_a_copy_has_the_donors_state_and_steps_with_its_explored_hparams(tmp_path):
    donor = Member()
    donor.build(HPARAMS, seed=1)
    donor.step()
    donor.step()
    path = tmp_path / "donor.ckpt"
    donor.save(path)

    copy = Member()
    copy.build({**HPARAMS, "learning_rate": 5e-3}, seed=2)
    copy.load(path)
    copy.reseed(3)
    explored = {**HPARAMS, "learning_rate": 2e-3, "warmup_steps": 0.5, "weight_decay": 0.1,
                "dropout": 0.3}
    copy.apply(explored)
    assert copy.trainer.state.global_step == 4
    for name, tensor in donor.trainer.model.state_dict().items():
        assert torch.equal(copy.trainer.model.state_dict()[name], tensor), name
    donor_state = donor.trainer.optimizer.state_dict()["state"]
    copy_state = copy.trainer.optimizer.state_dict()["state"]
    assert copy_state.keys() == donor_state.keys() and all(
        torch.equal(copy_state[k]["exp_avg"], donor_state[k]["exp_avg"]) for k in copy_state)

    copy.step()
    # the explored lr on the explored warmup (6 of 12 steps), at the step the copy is at
    assert copy.lrs.used[0] == pytest.approx(2e-3 * linear(4, 6, 12))
    assert copy.lrs.used[1] == pytest.approx(2e-3 * linear(5, 6, 12))
    decays = [g["weight_decay"] for g in copy.trainer.optimizer.param_groups]
    assert sorted(decays) == [0.0, 0.1]  # biases and LayerNorms do not decay
    assert {m.p for m in copy.trainer.model.modules() if isinstance(m, nn.Dropout)} == {0.3}
    assert 0.0 <= copy.evaluate()["eval_accuracy"] <= 1.0


def started() -> Member:
    """A member built from HPARAMS that has trained one populace step."""
    member = Member()
    member.build(HPARAMS, seed=0)
    member.step()
    return member


def test_a_fresh_member_evaluates_and_saves_before_training(tmp_path):
    member = Member()
    member.build(HPARAMS, seed=0)
    assert "eval_loss" in member.evaluate()  # what populace's preflight asks
    member.save(tmp_path / "fresh.ckpt")
    copy = Member()
    copy.build(HPARAMS, seed=0)
    copy.load(tmp_path / "fresh.ckpt")
    copy.step()
    assert copy.trainer.state.global_step == 2


def test_a_live_batch_size_change_is_refused_and_max_steps_must_cover_the_run():
    member = started()
    with pytest.raises(ConfigError, match="'per_device_train_batch_size': a TrainingArguments"):
        member.apply({**HPARAMS, "per_device_train_batch_size": 32})
    for _ in range(5):
        member.step()
    with pytest.raises(ConfigError, match="reached max_steps=12"):
        member.step()


def test_a_member_no_one_holds_ends_its_loop():
    assert_loop_ends_when_dropped(started())


class Constant(Member):
    args = {**Member.args, "lr_scheduler_type": "constant"}

    def evaluate(self):
        # the lr of the segment's first optimizer step (a ready point is one populace step)
        return {**super().evaluate(),
                "first_lr": self.lrs.used[-self.batches] if self.lrs.used else 0.0}


def test_a_pbt_run_trains_each_segment_with_the_hparams_in_force(tmp_path):
    store = tmp_path / "run.db"
    run(Constant, {"learning_rate": Float(1e-4, 1e-2, log=True),
                   "per_device_train_batch_size": Choice([8, 16])},
        store=store, population=3, steps=4, ready_steps=1, executor="inline",
        score="eval_accuracy", progress=False, seed=1)
    assert_segments_used(store, "first_lr", "learning_rate")


def test_an_hparam_without_a_target_is_refused_by_name():
    member = started()
    with pytest.raises(ConfigError, match="hparam 'temperature' has no target"):
        member.apply({**HPARAMS, "temperature": 2.0})


def test_the_example_trains_on_ray_workers(tmp_path):
    assert_example_trains_on_ray(EXAMPLE, tmp_path)
