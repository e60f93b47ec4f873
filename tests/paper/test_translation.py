"""The translation example (examples/translation.py): its BLEU, its synthetic language, the
paper's four hparams on the live modules, checkpoints that carry on exactly, and a populace
run with the paper's MT strategies."""

from __future__ import annotations

import numpy as np
import pytest
from support.paper import before_and_after, carries_on_bit_for_bit, run_tiny
from support.paths import EXAMPLES
from torch import nn

from populace.script import load_script

EXAMPLE = EXAMPLES / "translation.py"
mt = load_script(EXAMPLE)
example = __import__(mt.trainable.__module__)
HPARAMS = {"lr": 3e-3, "attention_dropout": 0.1, "residual_dropout": 0.2, "ff_dropout": 0.3}


def member(hparams=HPARAMS, seed=0):
    m = mt.trainable()
    m.build(hparams, seed)
    return m


def test_bleu_of_a_perfect_translation_is_100_and_of_an_empty_one_0():
    references = example.corpus()["validation"][1]
    assert example.bleu(references, references) == pytest.approx(100.0)
    assert example.bleu([""] * len(references), references) == 0.0
    shuffled = references[1:] + references[:1]  # the right words, the wrong sentences
    assert 0.0 < example.bleu(shuffled, references) < 50.0


def test_the_target_reorders_inflects_and_agrees():
    language = example.Language(example.LANGUAGE_SEED)
    rng = np.random.default_rng(3)
    for _ in range(200):
        source, target = language.sentence(rng)
        assert target[-3] == "wo"  # the object's case particle, then the verb at the end
        verb = next(w for w in source if w.removesuffix("ed") in language.verbs)
        assert target[-2] == language.lexicon[verb.removesuffix("ed")]
        subject = next(w for w in source if w.removesuffix("s") in language.nouns)
        noun = subject.removesuffix("s") if subject not in language.nouns else subject
        # the particle: tense, the subject's gender (a target-side fact) and number
        assert target[-1] == (("pa" if verb.endswith("ed") else "no") + language.gender[noun]
                              + ("p" if subject != noun else "s"))
        assert not set(source) & set(target)  # every word is translated
    genders = set(language.gender.values())
    assert genders == {"f", "m"}


def test_held_out_sentences_are_never_trained_on():
    data = example.corpus()
    source = data["source"]
    train = {source.decode(row[1:]) for row in data["train"][0].tolist()}
    for split in ("validation", "test"):
        held = {source.decode(row[1:]) for row in data[split][0].tolist()}
        assert len(held) == len(data[split][1]) and not held & train


def test_the_four_hparams_reach_their_own_modules_after_a_load(tmp_path):
    donor = member({"lr": 1e-3, "attention_dropout": 0.0, "residual_dropout": 0.0,
                    "ff_dropout": 0.0})
    donor.save(tmp_path / "donor.pt")
    m = member()
    m.load(tmp_path / "donor.pt")
    m.apply(HPARAMS)
    attention = [x for x in m.model.modules() if isinstance(x, nn.MultiheadAttention)]
    residual = [x for x in m.model.modules() if isinstance(x, example.ResidualDropout)]
    ff = [x for x in m.model.modules() if isinstance(x, example.FeedForwardDropout)]
    # one encoder layer (self-attention) and one decoder layer (self- and cross-attention)
    assert len(attention) == 3 and len(residual) == 2 + 3 and len(ff) == 2
    assert {a.dropout for a in attention} == {0.1}
    assert {d.p for d in residual} == {0.2} and {d.p for d in ff} == {0.3}
    plain = [x for x in m.model.modules() if type(x) is nn.Dropout]
    assert not plain  # no dropout the hparams leave at torch's default
    assert [g["lr"] for g in m.optimizer.param_groups] == [3e-3]


def test_training_lowers_the_loss_and_greedy_decoding_reads_it():
    m = member()
    first, later = before_and_after(m, 5)
    assert later["loss"] < first["loss"] - 0.5, (first, later)
    score, hypotheses = m.translate("validation")
    assert score == later["bleu"] and len(hypotheses) == example.VALIDATION
    assert 0.0 <= later["test_bleu"] <= 100.0


def test_a_member_reloaded_from_its_checkpoint_carries_on_bit_for_bit(tmp_path):
    carries_on_bit_for_bit(member, mt.trainable.state, tmp_path)


def test_populace_runs_the_example_with_tournament_and_perturb(tmp_path):
    run, results = run_tiny(mt, tmp_path)
    assert run["exploit"] == {"name": "tournament"}
    assert run["explore"] == {"name": "perturb", "factors": [0.8, 1.2]}
    assert all("test_bleu" in r.metrics for r in results)
