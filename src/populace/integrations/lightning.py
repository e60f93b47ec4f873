"""PyTorch Lightning members: a LightningModule trained by Lightning's own `Trainer.fit`.

One populace step is one epoch of `fit`, or N batches with `batches = N` (the
data goes on across epochs; a validation ends each step). The member's checkpoint is Lightning's own
(`Trainer.save_checkpoint`: weights, optimizers, LR schedulers, loops, callbacks),
restored by `fit(ckpt_path=..., weights_only=True)`. Restoring puts the donor's
lr back into the optimizers (Lightning #12812, the same bug through Ray Tune), so
after every load, and before the first batch, the member's own hparams are set on
the optimizers' param groups, the LR schedulers' base lr and the named module
attributes, as `populace.integrations.torch.apply_hparams` does.

    class Classifier(LightningTrainable):
        modules = {"dropout": (torch.nn.Dropout, "p")}
        ignore = ("batch_size",)  # read by `data`, which each build calls again

        def module(self, hparams):
            return MyLightningModule(lr=hparams["lr"], dropout=hparams["dropout"])

        def data(self, hparams):
            return MyDataModule(batch_size=hparams["batch_size"])

The score is a metric the module logs (`self.log("val_acc", ...)`): `evaluate`
returns Lightning's `callback_metrics` after the epoch's validation.
"""

from __future__ import annotations

import weakref
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from populace.integrations._paused import Paused
from populace.integrations.torch import apply_hparams, reseed
from populace.trainable import Trainable


class _Steps(pl.Callback):
    """Pauses `fit` where a populace step ends, and puts the hparams in force where a
    restored checkpoint could have changed them: at the start of training.

    A step ends after its validation, where Lightning's ModelCheckpoint saves: at the
    end of an epoch, or of every N batches (`val_check_interval=N`).
    """

    def __init__(self, paused: Paused, member: _Enforce, batches: int | None) -> None:
        self.paused, self.member, self.batches = paused, member, batches

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.member.enforce(trainer)  # the checkpoint is restored by now: this wins over it
        self.paused.pause()  # started: load, apply and save may run here

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.batches is None:
            self.paused.pause()

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if self.batches is not None and fitting:
            self.paused.pause()


class _Enforce:
    """The hparams in force and where they go; what the loop's thread holds of a member
    (not the member itself, so a member no one holds can end its loop)."""

    def __init__(self, hparams: Mapping[str, Any], kind: type[LightningTrainable]) -> None:
        self.hparams, self.kind = dict(hparams), kind

    def enforce(self, trainer: pl.Trainer) -> None:
        module = trainer.lightning_module
        apply_hparams(
            self.hparams, optimizers=trainer.optimizers,
            schedulers=[c.scheduler for c in trainer.lr_scheduler_configs],
            modules={name: (module, kind, attr) for name, (kind, attr)
                     in self.kind.modules.items()},
            ignore=self.kind.ignore,
        )


class LightningTrainable(Trainable):
    """A member trained by `lightning.pytorch.Trainer.fit`, one epoch a step.

    Write `module(hparams)` (a LightningModule whose `configure_optimizers` builds
    its optimizers) and `data(hparams)` (a LightningDataModule, or a pair of train
    and validation DataLoaders). Each hparam goes to the optimizers' param groups
    (lr, momentum, weight_decay...), to `modules` ({hparam: (module type, attribute)},
    set on every such module inside the LightningModule, itself included), or is
    listed in `ignore` when `module` or `data` reads it at build.
    """

    modules: ClassVar[Mapping[str, tuple[type[nn.Module], str]]] = {}
    ignore: ClassVar[tuple[str, ...]] = ()
    batches: ClassVar[int | None] = None  # a step of N batches (across epochs), not an epoch
    trainer_args: ClassVar[Mapping[str, Any]] = {}  # more Trainer arguments (accelerator...)
    # intra-op threads per process, as TorchTrainable's; None keeps torch's default
    threads: ClassVar[int | None] = 1
    # load checkpoints holding pickled Python objects (they can run code): trusted ones only
    allow_pickle: ClassVar[bool] = False

    @abstractmethod
    def module(self, hparams: Mapping[str, Any]) -> pl.LightningModule:
        """The LightningModule of a fresh member."""

    @abstractmethod
    def data(self, hparams: Mapping[str, Any]) -> Any:
        """A LightningDataModule, or (train DataLoader, validation DataLoader)."""

    def build(self, hparams: Mapping[str, Any], seed: int) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        reseed(seed)
        self.model = self.module(hparams)
        self.datamodule = self.data(hparams)
        self._enforce = _Enforce(hparams, type(self))
        self._paused = Paused()
        # a member no one holds any more ends its loop, and its thread and tensors go
        weakref.finalize(self, self._paused.stop)
        # N batches a step: a validation every N batches, across epochs
        steps = ({} if self.batches is None else
                 {"val_check_interval": self.batches, "check_val_every_n_epoch": None})
        self.trainer = pl.Trainer(**self._trainer_args(
            max_epochs=-1, **steps, callbacks=[_Steps(self._paused, self._enforce, self.batches),
                                               *self.trainer_args.get("callbacks", ())]))

    def _trainer_args(self, **args: Any) -> dict[str, Any]:
        quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                 "enable_model_summary": False, "num_sanity_val_steps": 0}
        return {**quiet, **self.trainer_args, **args}

    def _fit(self, checkpoint: Path | None) -> None:
        """Start Lightning's fit (from `checkpoint`, Lightning's own restore) up to its
        first batch, with the hparams in force."""
        data, trainer, model = self.datamodule, self.trainer, self.model
        loaders = ({"datamodule": data} if isinstance(data, pl.LightningDataModule)
                   else {"train_dataloaders": data[0], "val_dataloaders": data[1]})
        weights_only = not self.allow_pickle
        # the thread holds the loop's parts, never the member (see `build`)
        self._paused.start(lambda: trainer.fit(model, ckpt_path=checkpoint,
                                               weights_only=weights_only, **loaders))

    def step(self) -> None:
        """Train one epoch (or `batches` batches) and its validation."""
        if not self._paused.started:
            self._fit(None)
        self._paused.resume()

    def evaluate(self) -> dict[str, float]:
        """What the module logged (`self.log`), as of the last validation."""
        if not self._paused.started:  # a fresh member, not trained yet: validate it alone
            trainer = pl.Trainer(**self._trainer_args())
            data = self.datamodule
            if isinstance(data, pl.LightningDataModule):
                trainer.validate(self.model, datamodule=data, verbose=False)
            else:
                trainer.validate(self.model, dataloaders=data[1], verbose=False)
            metrics = trainer.callback_metrics
        else:
            metrics = self.trainer.callback_metrics
        return {k: float(v) for k, v in metrics.items() if v.numel() == 1}

    def save(self, path: Path) -> None:
        """Lightning's full checkpoint of the member at its step's end."""
        if not self._paused.started:
            self._fit(None)  # set up (optimizers, loops) so the file is a whole state
        self.trainer.save_checkpoint(path, weights_only=False)

    def load(self, path: Path) -> None:
        """Resume Lightning's fit from `path`; `apply` then puts the member's hparams in
        force over what it restored."""
        if self._paused.started:
            raise RuntimeError("load follows build: this member has trained already")
        self._fit(path)

    def apply(self, hparams: Mapping[str, Any]) -> None:
        self._enforce.hparams = dict(hparams)
        if self._paused.started:  # fit is paused: the next batch sees them
            self._enforce.enforce(self.trainer)
