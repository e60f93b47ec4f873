"""The GAN example (examples/gan_digits.py): its Inception-style score and coverage read real
digits as good and noise or one class as bad, its classifier cache is checked before use,
the GAN learns, its checkpoints carry on exactly, and populace runs it with the paper's GAN
strategies."""

from __future__ import annotations

import pytest
import torch
from support.paper import before_and_after, carries_on_bit_for_bit, run_tiny
from support.paths import EXAMPLES

from populace.script import load_script

EXAMPLE = EXAMPLES / "gan_digits.py"
gan = load_script(EXAMPLE)
example = __import__(gan.trainable.__module__)
LEARNS = {"g_lr": 1e-3, "d_lr": 1e-3}  # measured: an Inception-style score of 7.4 in 4,000 updates


def member(hparams=LEARNS, seed=0):
    m = gan.trainable()
    m.build(hparams, seed)
    return m


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty classifier cache, and the in-process one cleared around the test."""
    monkeypatch.setenv("POPULACE_CACHE", str(tmp_path / "cache"))
    example.classifier.cache_clear()
    yield tmp_path / "cache"
    example.classifier.cache_clear()


def test_real_digits_score_high_and_noise_or_one_class_low(cache):
    torch.set_num_threads(1)
    data = example.dataset()
    assert example.accuracy(example.classifier()) > 0.95
    real = example.inception_score(data["test"])
    noise = example.inception_score(torch.rand(1000, 64) * 2 - 1)
    ones = data["train"][data["train_labels"] == 1]
    assert real > 9.0 and noise < 4.0, (real, noise)
    assert example.inception_score(ones) < 1.1  # one class: p(class | x) = p(class)
    # coverage reads pixels: real digits cover the test digits, noise and one class do not
    assert example.coverage(data["train"]) > 0.95
    assert example.coverage(torch.rand(1000, 64) * 2 - 1) == 0.0
    assert example.coverage(ones) < 0.2
    # ten prototypes, one real digit of each class repeated, score high but cover little
    prototypes = torch.cat([data["train"][data["train_labels"] == k][:1] for k in range(10)])
    repeated = prototypes.repeat(100, 1)
    assert example.inception_score(repeated) > 8.0 and example.coverage(repeated) < 0.2


def test_the_classifier_is_cached_and_checked_before_use(cache, monkeypatch):
    torch.set_num_threads(1)
    first = example.classifier()
    [path] = cache.glob("digits-classifier-*.pt")
    assert example.fingerprint()[:16] in path.name
    example.classifier.cache_clear()
    trained = []
    original = example.train_classifier
    monkeypatch.setattr(example, "train_classifier",
                        lambda: trained.append(1) or original())
    again = example.classifier()  # from the file: not trained again
    assert not trained
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved = torch.load(path, weights_only=True)
    saved["weights"]["0.weight"] += 1.0  # weights that no longer match their accuracy
    torch.save(saved, path)
    example.classifier.cache_clear()
    example.classifier()
    assert trained == [1]
    path.write_bytes(b"not a checkpoint")
    example.classifier.cache_clear()
    example.classifier()
    assert trained == [1, 1]
    assert torch.load(path, weights_only=True)["fingerprint"] == example.fingerprint()


def test_the_gan_learns_digits_in_a_few_steps():
    first, later = before_and_after(member(), 9)
    assert later["inception"] > first["inception"] + 1.0, (first, later)
    assert later["coverage"] > first["coverage"], (first, later)


def test_each_learning_rate_reaches_its_own_optimizer_after_a_load(tmp_path):
    donor = member({"g_lr": 1e-5, "d_lr": 1e-5})
    donor.save(tmp_path / "donor.pt")
    m = member()
    m.load(tmp_path / "donor.pt")
    m.apply({"g_lr": 2e-3, "d_lr": 4e-4})
    assert [g["lr"] for g in m.g_optimizer.param_groups] == [2e-3]
    assert [g["lr"] for g in m.d_optimizer.param_groups] == [4e-4]


def test_a_member_reloaded_from_its_checkpoint_carries_on_bit_for_bit(tmp_path):
    carries_on_bit_for_bit(member, gan.trainable.state, tmp_path)


def test_evaluating_leaves_the_members_random_stream_alone():
    m = member()
    m.step()
    before = torch.get_rng_state()
    first = m.evaluate()
    assert torch.equal(torch.get_rng_state(), before)
    assert m.evaluate() == first  # the same fixed noise each time


def test_populace_runs_the_example_with_tournament_and_perturb_by_two(tmp_path):
    run, results = run_tiny(gan, tmp_path)
    assert run["exploit"] == {"name": "tournament"}
    assert run["explore"] == {"name": "perturb", "factors": [0.5, 2.0]}
    assert all("coverage" in r.metrics for r in results)
