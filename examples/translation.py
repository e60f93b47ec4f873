"""A small Transformer translating a synthetic language, tuned by PBT as in the paper's MT.

    populace run examples/translation.py --store runs/translation.db

The example makes its own parallel corpus (no download): a rule-based source
language (subject, verb, object and an optional prepositional phrase, with
adjectives, plural nouns and a past tense) and its target, which differs in
four ways a model has to learn: every word maps to another (a lexicon), the
word order changes (the phrase moves to the front, the verb to the end, the
adjectives follow their noun in reverse order, the object takes a case
particle), a determiner and every adjective agree with their noun's gender and
number, and the verb ends in a particle that agrees with its subject's gender
and number and says the tense. A noun's gender shows only in the target, so
it is learned word by word. Training uses a fixed set of sentences, so the
dropouts matter; the score is BLEU (sacrebleu, greedy decoding) on held-out
validation sentences, and BLEU on test sentences is reported beside it (never
ranked by). One fixed setting (lr 1e-3, every dropout 0.1) reaches about 26
BLEU after 480 batches, and a run's 32 steps are 320: far from 100, so the
hparams and their schedule matter.

The hparams are the paper's for its Transformer (section 4.2): the learning
rate, the attention dropout, the residual (layer) dropout and the feed-forward
dropout, set on the live modules after an exploit. Exploit is the paper's
binary tournament, explore perturbs by x0.8 / x1.2. A step is `BATCHES`
batches of Adam; a checkpoint holds the model, the Adam state and the RNGs.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sacrebleu
import torch
import torch.nn.functional as F
from torch import nn

from populace import Float
from populace.integrations.torch import TorchTrainable

LANGUAGE_SEED = 0  # the lexicon, the genders and the corpus: the same for every member and run
TRAIN, VALIDATION, TEST = 4000, 200, 200  # distinct sentences: no member trains on the last two
BATCH, BATCHES = 64, 10  # sentences a batch, and batches a populace step
WIDTH, HEADS, LAYERS, FEED_FORWARD = 64, 4, 1, 128  # 1 encoder and 1 decoder layer
PAD, BOS, EOS = 0, 1, 2  # in both vocabularies

space = {
    "lr": Float(1e-4, 1e-2, log=True),
    "attention_dropout": Float(0.0, 0.5),
    "residual_dropout": Float(0.0, 0.5),
    "ff_dropout": Float(0.0, 0.5),
}
config = {
    "population": 8, "steps": 32, "ready_steps": 4, "score": "bleu",
    "exploit": {"name": "tournament"},
    "explore": {"name": "perturb", "factors": [0.8, 1.2]},
}


# -- the synthetic language ----------------------------------------------------------------


def words(rng: np.random.Generator, n: int, syllables: tuple[int, int]) -> list[str]:
    """`n` distinct made-up words of consonant-vowel syllables."""
    out: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(syllables[0], syllables[1] + 1))
        out.add("".join(rng.choice(list("bdfgklmnprstvz")) + rng.choice(list("aeiou"))
                        for _ in range(k)))
    return sorted(out)


class Language:
    """The source grammar, its lexicon, and the rules that map a sentence to the target."""

    NOUNS, ADJECTIVES, VERBS, PREPOSITIONS = 24, 12, 12, 4

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        every = words(rng, 2 * (self.NOUNS + self.ADJECTIVES + self.VERBS + self.PREPOSITIONS),
                      (2, 3))
        rng.shuffle(every)
        source, target = every[::2], every[1::2]
        cut = np.cumsum([self.NOUNS, self.ADJECTIVES, self.VERBS])
        self.nouns, self.adjectives, self.verbs, self.prepositions = np.split(source, cut)
        self.lexicon = dict(zip(source, target, strict=True))
        self.gender = {n: "fm"[int(rng.integers(2))] for n in self.nouns}

    def sentence(self, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        """One random source sentence and its translation, as lists of words."""
        subject, obj = self.phrase(rng), self.phrase(rng)
        verb, past = str(rng.choice(self.verbs)), bool(rng.integers(2))
        place = (str(rng.choice(self.prepositions)), self.phrase(rng)) if rng.random() < 0.5 \
            else None
        source = [*self.source_phrase(subject), verb + ("ed" if past else ""),
                  *self.source_phrase(obj)]
        target = []
        if place:
            source += [place[0], *self.source_phrase(place[1])]
            target += [*self.target_phrase(place[1]), self.lexicon[place[0]]]
        noun, plural = subject[1], subject[2]
        agreement = f"{'pa' if past else 'no'}{self.gender[noun]}{'p' if plural else 's'}"
        target += [*self.target_phrase(subject), *self.target_phrase(obj), "wo",
                   self.lexicon[verb], agreement]
        return source, target

    def phrase(self, rng: np.random.Generator) -> tuple[bool, str, bool, list[str]]:
        """A noun phrase: definite or not, its noun, plural or not, and 0 to 2 adjectives."""
        adjectives = list(rng.choice(self.adjectives, size=int(rng.integers(3)), replace=False))
        return (bool(rng.integers(2)), str(rng.choice(self.nouns)), bool(rng.integers(2)),
                [str(a) for a in adjectives])

    @staticmethod
    def source_phrase(phrase: tuple[bool, str, bool, list[str]]) -> list[str]:
        definite, noun, plural, adjectives = phrase
        return ["the" if definite else "a", *adjectives, noun + ("s" if plural else "")]

    def target_phrase(self, phrase: tuple[bool, str, bool, list[str]]) -> list[str]:
        """Determiner (definiteness, gender, number), noun, plural mark, adjectives reversed
        and each agreeing with the noun's gender."""
        definite, noun, plural, adjectives = phrase
        gender = self.gender[noun]
        determiner = ("de" if definite else "un") + gender + ("p" if plural else "s")
        agreeing = [self.lexicon[a] + gender for a in reversed(adjectives)]
        return [determiner, self.lexicon[noun], *(["ku"] if plural else []), *agreeing]


class Vocabulary:
    """Words to ids and back; ids 0 to 2 are PAD, BOS and EOS."""

    def __init__(self, sentences: list[list[str]]):
        self.words = ["<pad>", "<s>", "</s>", *sorted({w for s in sentences for w in s})]
        self.ids = {w: i for i, w in enumerate(self.words)}

    def encode(self, sentences: list[list[str]]) -> torch.Tensor:
        """Sentences as one padded tensor [n, longest + 2]: BOS, the words, EOS, PAD."""
        longest = max(map(len, sentences)) + 2
        out = torch.full((len(sentences), longest), PAD)
        for i, s in enumerate(sentences):
            out[i, :len(s) + 2] = torch.tensor([BOS, *(self.ids[w] for w in s), EOS])
        return out

    def decode(self, ids: list[int]) -> str:
        """The words before the first EOS, joined by spaces (BOS and PAD dropped)."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self.words[i])
        return " ".join(out)


@cache
def corpus() -> dict:
    """The training, validation and test sentences, distinct, encoded; made once per
    process. The held-out references stay strings: BLEU compares text."""
    language, rng = Language(LANGUAGE_SEED), np.random.default_rng(LANGUAGE_SEED + 1)
    pairs: dict[str, list[str]] = {}
    while len(pairs) < TRAIN + VALIDATION + TEST:
        source, target = language.sentence(rng)
        pairs.setdefault(" ".join(source), target)
    sources = [s.split() for s in pairs]
    targets = list(pairs.values())
    src_vocab, tgt_vocab = Vocabulary(sources), Vocabulary(targets)
    return {
        "source": src_vocab, "target": tgt_vocab,
        "train": (src_vocab.encode(sources[:TRAIN]), tgt_vocab.encode(targets[:TRAIN])),
        **{name: (src_vocab.encode(sources[a:b]), [" ".join(t) for t in targets[a:b]])
           for name, a, b in (("validation", TRAIN, TRAIN + VALIDATION),
                              ("test", TRAIN + VALIDATION, TRAIN + VALIDATION + TEST))},
    }


# -- the model -----------------------------------------------------------------------------


class ResidualDropout(nn.Dropout):
    """The dropout on each sublayer's output before its residual add (the paper's layer
    dropout); a type of its own so the hparam reaches these modules only."""


class FeedForwardDropout(nn.Dropout):
    """The dropout between the feed-forward block's two linear layers."""


class Translator(nn.Module):
    """torch.nn.Transformer with embeddings, learned positions and an output layer."""

    def __init__(self, sources: int, targets: int, longest: int):
        super().__init__()
        self.source_embedding = nn.Embedding(sources, WIDTH, padding_idx=PAD)
        self.target_embedding = nn.Embedding(targets, WIDTH, padding_idx=PAD)
        self.position = nn.Embedding(longest, WIDTH)
        self.transformer = nn.Transformer(WIDTH, HEADS, LAYERS, LAYERS, FEED_FORWARD,
                                          batch_first=True)
        # padded batches as they are: the nested-tensor fast path is a prototype
        self.transformer.encoder.use_nested_tensor = False
        self.out = nn.Linear(WIDTH, targets)
        for layer in [*self.transformer.encoder.layers, *self.transformer.decoder.layers]:
            layer.dropout = FeedForwardDropout()
            for name in ("dropout1", "dropout2", "dropout3"):
                if hasattr(layer, name):
                    setattr(layer, name, ResidualDropout())

    def embed(self, embedding: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return embedding(ids) * WIDTH**0.5 + self.position(torch.arange(ids.shape[1]))

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        return self.transformer.encoder(self.embed(self.source_embedding, source),
                                        src_key_padding_mask=source == PAD)

    def decode(self, memory: torch.Tensor, source: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
        """Next-word logits at every position of `target` (causal)."""
        length = target.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool).triu(1)  # True: may not see
        hidden = self.transformer.decoder(
            self.embed(self.target_embedding, target), memory, tgt_mask=causal,
            tgt_is_causal=True, tgt_key_padding_mask=target == PAD,
            memory_key_padding_mask=source == PAD)
        return self.out(hidden)

    @torch.no_grad()
    def greedy(self, source: torch.Tensor, longest: int) -> torch.Tensor:
        """Greedy decoding of a batch, `longest` words at most."""
        memory = self.encode(source)
        out = torch.full((len(source), 1), BOS)
        done = torch.zeros(len(source), dtype=torch.bool)
        for _ in range(longest):
            word = self.decode(memory, source, out)[:, -1].argmax(-1)
            word[done] = PAD
            out = torch.cat([out, word[:, None]], 1)
            done |= word == EOS
            if done.all():
                break
        return out


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu's defaults) of `hypotheses` against one reference each."""
    return sacrebleu.corpus_bleu(hypotheses, [references]).score


class Translation(TorchTrainable):
    state = ("model", "optimizer")
    modules = {
        "attention_dropout": ("model", nn.MultiheadAttention, "dropout"),
        "residual_dropout": ("model", ResidualDropout, "p"),
        "ff_dropout": ("model", FeedForwardDropout, "p"),
    }

    def build(self, hparams, seed):
        torch.manual_seed(seed)  # initial weights; then batches and dropout masks
        self.data = corpus()
        source, target = self.data["train"]
        self.model = Translator(len(self.data["source"].words), len(self.data["target"].words),
                                max(source.shape[1], target.shape[1]) + 8)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=hparams["lr"],
                                          betas=(0.9, 0.98))
        self.apply(hparams)
        self.loss = float("nan")  # the last batch's training loss, once a step has run

    def step(self):
        source, target = self.data["train"]
        self.model.train()
        for _ in range(BATCHES):
            batch = torch.randint(len(source), (BATCH,))
            src, tgt = trim(source[batch]), trim(target[batch])
            logits = self.model.decode(self.model.encode(src), src, tgt[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(),
                                   ignore_index=PAD)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
        self.loss = loss.item()

    def evaluate(self):
        return {"bleu": self.translate("validation")[0], "test_bleu": self.translate("test")[0],
                "loss": self.loss}

    def translate(self, split: str) -> tuple[float, list[str]]:
        """BLEU of the greedy translations of a held-out split, and the translations."""
        self.model.eval()
        source, references = self.data[split]
        longest = self.data["train"][1].shape[1] + 4
        decoded = self.model.greedy(trim(source), longest)
        hypotheses = [self.data["target"].decode(row[1:]) for row in decoded.tolist()]
        return bleu(hypotheses, references), hypotheses


def trim(ids: torch.Tensor) -> torch.Tensor:
    """A padded batch without the columns that are padding in every row."""
    return ids[:, :int((ids != PAD).sum(1).max())]
