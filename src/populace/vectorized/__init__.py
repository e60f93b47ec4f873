"""A vectorized population: the whole population trained as one batched model, in one
process, on the CPU or a GPU (torch.func: stack_module_state, functional_call, vmap).

A run script defines a `VectorizedTrainable` (one member's model from a seed, its data,
loss and metrics) and its space; `populace run SCRIPT --store ...` then trains every
member at once, one vmapped call a step, with every hparam a tensor of shape
[population]. It is the same PBT and the same store as any run: at each ready point a
member is reported to the store, which builds the same Snapshot and calls the same
exploit and explore; an exploit copies the donor's slice (parameters, buffers,
optimizer state) into the member's, and explore writes the member's new hparams into
those tensors. `populace status`, `report`, `replay` and a resume after a kill work as
on any run, and `load_best` loads the best member into a plain `nn.Module`.

Modules: `trainable` (what a user writes), `context` (a member's hparams inside its
forward pass; `Dropout`), `hparams` (hparams as tensors, and where each goes), `optim`
(SGD, Adam, AdamW over stacked tensors), `data` (each member's batches), `functional`
(stacking and vmap; refusing models vmap cannot run), `population` (the stacked state
and one training step), `heap` (glibc's heap kept for a run's steps), `layout`
(checkpoint files), `run` (the executor's worker), `plain` (one member trained alone by
torch.optim: the reference a vectorized run matches).
"""

from __future__ import annotations

from populace.vectorized.context import Dropout, hparam
from populace.vectorized.data import Batch, Data, Shuffled
from populace.vectorized.layout import load_best, load_member
from populace.vectorized.optim import SGD, Adam, AdamW, StackedOptimizer
from populace.vectorized.trainable import VectorizedTrainable

__all__ = ["SGD", "Adam", "AdamW", "Batch", "Data", "Dropout", "Shuffled", "StackedOptimizer",
           "VectorizedTrainable", "hparam", "load_best", "load_member"]
