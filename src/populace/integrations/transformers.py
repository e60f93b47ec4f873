"""Hugging Face Transformers members: PBT over a `Trainer`, with its own checkpoints.

Each member is a `transformers.Trainer` whose model comes from `model_init`; one
populace step is `batches` optimizer steps of the Trainer's own `train` loop. The
checkpoint is the Trainer's own (`save_model`, optimizer, LR scheduler, RNG and
trainer state, as `train(resume_from_checkpoint=...)` reads them), packed in one
file. Resuming brings the donor's learning rate back with its optimizer and
scheduler (transformers #10247 and #9873 were checkpoint errors on the way there
through Ray Tune), so after every load the member's own hparams are put in force:

- `learning_rate` and a warmup (`warmup_steps`, a fraction of the run below 1, or
  `warmup_ratio` where the installed Transformers has it): the LR schedule is
  built again for the new values, at the step the member has reached;
- `weight_decay`: the param groups that decay (not biases and LayerNorms);
- `per_device_train_batch_size` and any other TrainingArguments field: set when
  the member is built, for the Trainer to read (a change on a live Trainer is
  refused: it takes a build);
- other hparams: `modules` ({hparam: (module type, attribute)}), or `ignore`.

The score is a metric `Trainer.evaluate` returns (`eval_loss`, or `eval_<name>`
from `compute_metrics`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
import tempfile
import warnings
import weakref
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import (
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from populace.errors import ConfigError
from populace.integrations._paused import Paused
from populace.integrations.torch import apply_hparams, reseed
from populace.trainable import Trainable

ARGS = {f.name for f in dataclasses.fields(TrainingArguments)}
# the hparams the LR schedule is rebuilt for (warmup_ratio: Transformers before 5)
SCHEDULE = tuple(n for n in ("learning_rate", "warmup_steps", "warmup_ratio") if n in ARGS)
TIMINGS = ("_runtime", "_per_second", "_preparation_time")  # Trainer.evaluate's, left out


class _Steps(TrainerCallback):
    """Pauses `train` where a populace step ends, and puts the hparams in force once the
    checkpoint is restored (optimizer and scheduler are, by the start of training)."""

    def __init__(self, paused: Paused, enforce: _Enforce, batches: int) -> None:
        self.paused, self.enforce, self.batches = paused, enforce, batches

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.enforce.trainer_started()
        self.paused.pause()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.batches == 0:
            self.paused.pause()


class _Enforce:
    """The hparams in force and how they reach a Trainer; what the loop's thread holds of
    a member (not the member itself, so a member no one holds can end its loop)."""

    def __init__(self, hparams: Mapping[str, Any], kind: type[TransformersTrainable]) -> None:
        self.hparams, self.kind = dict(hparams), kind
        self.trainer: Trainer | None = None

    def trainer_started(self) -> None:
        assert self.trainer is not None
        self.put(self.trainer)

    def put(self, trainer: Trainer) -> None:
        args, model, changed_schedule = trainer.args, trainer.model, False
        assert model is not None
        for name, value in self.hparams.items():
            if name in self.kind.ignore:
                continue
            if name in self.kind.modules:
                kind, attr = self.kind.modules[name]
                apply_hparams({name: value}, modules={name: (model, kind, attr)})
            elif name in SCHEDULE:
                setattr(args, name, value)
                changed_schedule = True
            elif name == "weight_decay":
                args.weight_decay = value
                _decay(trainer, value)
            elif name in ARGS:
                if getattr(args, name) != value:
                    raise ConfigError(f"hparam {name!r}: a TrainingArguments field a live "
                                      f"Trainer cannot change ({getattr(args, name)!r} to "
                                      f"{value!r}); it is set when the member is built")
            else:
                raise ConfigError(
                    f"hparam {name!r} has no target: it is not one of {', '.join(SCHEDULE)}, "
                    "weight_decay or another TrainingArguments field, nor in modules "
                    f"({', '.join(self.kind.modules) or 'none given'}); list it in ignore if "
                    "model_init or datasets reads it")
        if changed_schedule:
            _reschedule(trainer)


def _decay(trainer: Trainer, value: float) -> None:
    """Set weight decay on the param groups the Trainer decays (not biases, norms)."""
    model, optimizer = trainer.model, trainer.optimizer
    assert model is not None and optimizer is not None
    names = set(trainer.get_decay_parameter_names(model))
    decayed = {id(p) for n, p in model.named_parameters() if n in names}
    for group in optimizer.param_groups:
        if any(id(p) in decayed for p in group["params"]):
            group["weight_decay"] = value


def _reschedule(trainer: Trainer) -> None:
    """Build the LR schedule again from the args (new lr or warmup), at the step reached:
    a restored scheduler would go on with the donor's base lr."""
    optimizer = trainer.optimizer
    assert optimizer is not None
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = trainer.args.learning_rate
    trainer.lr_scheduler = None
    scheduler = trainer.create_scheduler(trainer.state.max_steps, optimizer)
    with warnings.catch_warnings():  # stepped without an optimizer step: on purpose
        warnings.simplefilter("ignore")
        for _ in range(trainer.state.global_step):
            scheduler.step()


class TransformersTrainable(Trainable):
    """A member trained by a `transformers.Trainer`, `batches` optimizer steps a step.

    Write `model_init(hparams)` (a model: from a config, for random weights) and
    `datasets(hparams)` (train and eval datasets of the Trainer's inputs); give
    `compute_metrics` and `data_collator` as for a Trainer. `args` holds the other
    TrainingArguments: `max_steps` should cover the run (steps x batches), as the
    LR schedule runs over it.
    """

    batches: ClassVar[int] = 1
    args: ClassVar[Mapping[str, Any]] = {}
    modules: ClassVar[Mapping[str, tuple[type[nn.Module], str]]] = {}
    ignore: ClassVar[tuple[str, ...]] = ()
    # intra-op threads per process, as TorchTrainable's; None keeps torch's default
    threads: ClassVar[int | None] = 1

    @abstractmethod
    def model_init(self, hparams: Mapping[str, Any]) -> PreTrainedModel:
        """The model of a fresh member."""

    @abstractmethod
    def datasets(self, hparams: Mapping[str, Any]) -> tuple[Any, Any]:
        """(train dataset, eval dataset)."""

    # as a Trainer's, each a static method (a bound one would keep the member alive):
    # an EvalPrediction to a dict of metrics, a list of rows to a batch
    compute_metrics: ClassVar[Any] = None
    data_collator: ClassVar[Any] = None

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        reseed(seed)
        self._folder = tempfile.mkdtemp(prefix="populace-transformers-")
        self._paused = Paused()
        # a member no one holds any more ends its loop, and its folder goes
        weakref.finalize(self, _close, self._paused, self._folder)
        self._enforce = _Enforce(hparams, type(self))
        train, evaluation = self.datasets(hparams)
        self.trainer = Trainer(
            model=self.model_init(hparams), args=self._arguments(hparams, seed),
            train_dataset=train, eval_dataset=evaluation, data_collator=self.data_collator,
            compute_metrics=self.compute_metrics,
            callbacks=[_Steps(self._paused, self._enforce, self.batches)])
        self.trainer.remove_callback(PrinterCallback)  # it prints every evaluation's dict
        self._enforce.trainer = self.trainer

    def _arguments(self, hparams: Mapping[str, Any], seed: int) -> TrainingArguments:
        quiet = {"report_to": [], "save_strategy": "no", "eval_strategy": "no",
                 "logging_strategy": "no", "disable_tqdm": True}
        given = {k: v for k, v in hparams.items() if k in ARGS and k not in self.ignore}
        return TrainingArguments(**{**quiet, **self.args, **given, "seed": seed,
                                    "output_dir": self._folder})

    def _train(self, checkpoint: str | None) -> None:
        trainer = self.trainer  # the thread holds the loop's parts, never the member
        self._paused.start(lambda: trainer.train(resume_from_checkpoint=checkpoint))

    def step(self) -> None:
        if not self._paused.started:
            self._train(None)
        self._paused.resume()
        if self._paused.finished:
            raise ConfigError(f"the Trainer reached max_steps={self.trainer.state.max_steps} "
                              "before the run's last step: set args max_steps to at least "
                              f"the run's steps x batches ({self.batches})")

    def evaluate(self) -> dict[str, float]:
        """`Trainer.evaluate`'s metrics: eval_loss and compute_metrics' (eval_...), and the
        epoch; not its timings, which say nothing of the member."""
        return {k: float(v) for k, v in self.trainer.evaluate().items()
                if isinstance(v, (int, float)) and not k.endswith(TIMINGS)}

    def save(self, path: Path) -> None:
        """The Trainer's own checkpoint folder, packed in one file at `path`."""
        if not self._paused.started:
            self._train(None)  # optimizer and schedule made, so the file is a whole state
        model = self.trainer.model
        assert model is not None
        self.trainer._save_checkpoint(model, trial=None)
        folder = Path(self._folder) / f"checkpoint-{self.trainer.state.global_step}"
        with tarfile.open(path, "w") as tar:
            tar.add(folder, arcname=".")
        shutil.rmtree(folder)

    def load(self, path: Path) -> None:
        """Resume the Trainer's own loop from the checkpoint `save` packed."""
        if self._paused.started:
            raise RuntimeError("load follows build: this member has trained already")
        folder = Path(tempfile.mkdtemp(dir=self._folder))
        with tarfile.open(path) as tar:
            tar.extractall(folder, filter="data")
        self._loaded = folder
        self._train(str(folder))

    def reseed(self, seed: int) -> None:
        """A copy draws from a stream of its own: the donor's RNG file is not restored."""
        for rng in getattr(self, "_loaded", Path(self._folder)).glob("rng_state*.pth"):
            rng.unlink()  # the Trainer reads it at the first batch, after this
        reseed(seed)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        self._enforce.hparams = dict(hparams)
        if self._paused.started:
            self._enforce.put(self.trainer)


def _close(paused: Paused, folder: str) -> None:
    paused.stop()
    shutil.rmtree(folder, ignore_errors=True)
