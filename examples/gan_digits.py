"""A small GAN on scikit-learn's 8x8 digits, its two learning rates tuned by PBT as in the
paper's GAN experiment.

    populace run examples/gan_digits.py --store runs/gan.db

Generator and discriminator are small MLPs trained by Adam with the
non-saturating loss; a step is `UPDATES` updates of each. The hparams are the
paper's (section 4.3): the generator's and the discriminator's learning rates,
whose balance decides whether the game learns, collapses or oscillates.
Exploit is the paper's binary tournament, explore perturbs by x0.5 / x2.0.

The score is an Inception-style score: exp of the mean KL divergence between
p(class | sample) and p(class) over `SAMPLES` generated digits, read by a digits
classifier trained once and cached (see `classifier`). It is 10 at most (every
sample classified with certainty, the classes used equally) and 1 for a
generator that makes one class only. Beside it each member reports `coverage`
(Naeem et al. 2020, never ranked by): the fraction of real test digits whose
ball to their 5th nearest real neighbour holds a generated sample. It reads
pixels, not the classifier, and cannot be met by one class, nor by a few
prototypes per class. A checkpoint holds both networks, both Adam states and
the RNGs; the score's samples come from a fixed noise of their own, so
evaluating never moves the member's random stream.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from populace import Float
from populace.integrations.torch import TorchTrainable

SPLIT_SEED, TEST = 0, 360  # the same split for every member, run and classifier
NOISE, HIDDEN = 16, 128  # the generator's input size, and both networks' width
BATCH, UPDATES = 64, 50  # a step: this many updates of each network
SAMPLES, NEIGHBOURS = 1000, 5  # samples scored; the k of coverage's balls
CLASSIFIER = {"hidden": 128, "updates": 300, "lr": 3e-3, "seed": 0}  # cached per setting

space = {
    "g_lr": Float(1e-5, 1e-2, log=True),
    "d_lr": Float(1e-5, 1e-2, log=True),
}
config = {
    "population": 8, "steps": 40, "ready_steps": 4, "score": "inception",
    "exploit": {"name": "tournament"},
    "explore": {"name": "perturb", "factors": [0.5, 2.0]},
}


@cache
def dataset() -> dict[str, torch.Tensor]:
    """Digits scaled to [-1, 1], split into train and test, with their labels."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test, train = order[:TEST], order[TEST:]
    x = torch.tensor(x / 8.0 - 1.0, dtype=torch.float32)
    y = torch.tensor(y)
    return {"train": x[train], "train_labels": y[train], "test": x[test], "test_labels": y[test]}


# -- the cached classifier -----------------------------------------------------------------


def cache_folder() -> Path:
    """$POPULACE_CACHE, else $XDG_CACHE_HOME/populace, else ~/.cache/populace."""
    if "POPULACE_CACHE" in os.environ:
        return Path(os.environ["POPULACE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "populace"


def fingerprint() -> str:
    """What the cached classifier depends on: the data, the split and its settings."""
    data = dataset()
    digest = hashlib.sha256(repr(sorted(CLASSIFIER.items())).encode())
    for name in ("train", "train_labels"):
        digest.update(data[name].numpy().tobytes())
    return digest.hexdigest()


def classifier_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, CLASSIFIER["hidden"]), nn.ReLU(),
                         nn.Linear(CLASSIFIER["hidden"], 10))


@cache
def classifier() -> nn.Sequential:
    """The digits classifier the score reads, trained once and cached on disk.

    The file is cache_folder()/digits-classifier-<fingerprint>.pt: data, split
    and settings are in its name and stored again inside it. It is used only
    when it loads as tensors (weights_only), its stored fingerprint matches and
    it classifies the test digits as accurately as it recorded; otherwise it is
    retrained (a few seconds) and written again, atomically, as workers may
    race to write it.
    """
    key = fingerprint()
    path = cache_folder() / f"digits-classifier-{key[:16]}.pt"
    net = classifier_net()
    try:
        saved = torch.load(path, weights_only=True)
        net.load_state_dict(saved["weights"])
        if saved["fingerprint"] == key and accuracy(net) == saved["accuracy"]:
            return net.eval()
    except (OSError, KeyError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
        pass  # missing, damaged or from other code: train it again
    net = train_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        torch.save({"weights": net.state_dict(), "fingerprint": key,
                    "accuracy": accuracy(net)}, f)
    os.replace(f.name, path)
    return net.eval()


def train_classifier() -> nn.Sequential:
    """An MLP on the training digits by full-batch Adam, from a random generator of its own."""
    data = dataset()
    generator = torch.Generator().manual_seed(CLASSIFIER["seed"])
    net = classifier_net()
    with torch.no_grad():  # initial weights from the classifier's own generator
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * (1 / p.shape[-1]) ** 0.5)
    optimizer = torch.optim.Adam(net.parameters(), lr=CLASSIFIER["lr"])
    with torch.enable_grad():  # the score that asks for it runs without gradients
        for _ in range(CLASSIFIER["updates"]):
            loss = F.cross_entropy(net(data["train"]), data["train_labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module) -> float:
    """The classifier's accuracy on the test digits."""
    data = dataset()
    return (net(data["test"]).argmax(1) == data["test_labels"]).float().mean().item()


# -- the scores ----------------------------------------------------------------------------


@torch.no_grad()
def inception_score(images: torch.Tensor) -> float:
    """exp(mean over samples of KL(p(class | x) || p(class))), by the cached classifier."""
    log_p = F.log_softmax(classifier()(images), dim=1)
    marginal = log_p.exp().mean(0).clamp_min(1e-12).log()
    return float((log_p.exp() * (log_p - marginal)).sum(1).mean().exp())


@torch.no_grad()
def coverage(images: torch.Tensor, real: torch.Tensor | None = None) -> float:
    """The fraction of real digits (the test split) with a sample inside the ball reaching
    their NEIGHBOURS-th nearest real neighbour (Naeem et al. 2020, "coverage")."""
    real = dataset()["test"] if real is None else real
    radius = torch.cdist(real, real).kthvalue(NEIGHBOURS + 1, dim=1).values  # +1: itself
    nearest = torch.cdist(real, images).min(dim=1).values
    return float((nearest <= radius).float().mean())


# -- the member ----------------------------------------------------------------------------


class GAN(TorchTrainable):
    state = ("generator", "discriminator", "g_optimizer", "d_optimizer")
    ignore = ("g_lr", "d_lr")  # apply sets each on its own optimizer

    def build(self, hparams, seed):
        torch.manual_seed(seed)  # initial weights; then noise and batches
        self.data = dataset()
        self.generator = nn.Sequential(
            nn.Linear(NOISE, HIDDEN), nn.LeakyReLU(0.2), nn.Linear(HIDDEN, HIDDEN),
            nn.LeakyReLU(0.2), nn.Linear(HIDDEN, 64), nn.Tanh())
        self.discriminator = nn.Sequential(
            nn.Linear(64, HIDDEN), nn.LeakyReLU(0.2), nn.Linear(HIDDEN, HIDDEN),
            nn.LeakyReLU(0.2), nn.Linear(HIDDEN, 1))
        # beta1 0.5, as DCGAN: the usual Adam setting for a GAN
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), betas=(0.5, 0.999))
        self.apply(hparams)

    def apply(self, hparams):
        super().apply(hparams)
        for optimizer, name in ((self.g_optimizer, "g_lr"), (self.d_optimizer, "d_lr")):
            for group in optimizer.param_groups:
                group["lr"] = hparams[name]

    def step(self):
        real = self.data["train"]
        for _ in range(UPDATES):
            batch = real[torch.randint(len(real), (BATCH,))]
            fake = self.generator(torch.randn(BATCH, NOISE))
            # the discriminator: real digits as 1, samples as 0
            d_loss = (F.binary_cross_entropy_with_logits(self.discriminator(batch),
                                                         torch.ones(BATCH, 1))
                      + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()),
                                                           torch.zeros(BATCH, 1)))
            self.d_optimizer.zero_grad()
            d_loss.backward()
            self.d_optimizer.step()
            # the generator, non-saturating: make the discriminator call its samples real
            g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake),
                                                        torch.ones(BATCH, 1))
            self.g_optimizer.zero_grad()
            g_loss.backward()
            self.g_optimizer.step()

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        """SAMPLES digits from a fixed noise (its own generator, not the member's stream)."""
        noise = torch.randn(SAMPLES, NOISE, generator=torch.Generator().manual_seed(0))
        return self.generator(noise)

    def evaluate(self):
        images = self.samples()
        return {"inception": inception_score(images), "coverage": coverage(images)}
