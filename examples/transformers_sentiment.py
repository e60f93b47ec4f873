"""PBT over a Hugging Face Transformers `Trainer`: a tiny BERT on made-up sentiment.

Nothing is downloaded: the model is a BERT built from a config (random weights),
the tokenizer a word-level one made from the task's words, the sentences made
here (label 1 when a sentence has more good words than bad ones). PBT tunes the
learning rate, warmup (a fraction of the run: `warmup_steps` below 1), weight
decay and per-device batch size; one populace step is 8 optimizer steps of the
Trainer's own loop, and the score its `eval_accuracy`.

    populace run examples/transformers_sentiment.py --store runs/sentiment.db
"""

from __future__ import annotations

import random

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from populace import Choice, Float
from populace.integrations.transformers import TransformersTrainable

GOOD, BAD, PLAIN = ["good", "great", "fine"], ["bad", "awful", "poor"], ["the", "a", "film"]
WORDS = ["[PAD]", "[UNK]", *GOOD, *BAD, *PLAIN]
LENGTH = 8  # words a sentence
STEPS, BATCHES = 8, 8  # populace steps a member, optimizer steps each

space = {
    "learning_rate": Float(1e-3, 3e-2, log=True),
    "warmup_steps": Float(0.0, 0.3),
    "weight_decay": Float(0.0, 0.1),
    "per_device_train_batch_size": Choice([8, 16]),
}
# inline: the members train in this process, one at a time (tiny members: no process
# start-up, no second import of Transformers); `--executor local` trains them in parallel
config = {"population": 4, "steps": STEPS, "ready_steps": 2, "executor": "inline",
          "score": "eval_accuracy"}


def tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the task's words, made here."""
    words = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=words, pad_token="[PAD]", unk_token="[UNK]")


def sentences(n: int, seed: int) -> list[dict]:
    """Tokenized sentences and their labels, the rows a Trainer takes."""
    rng, tok = random.Random(seed), tokenizer()
    rows = []
    for _ in range(n):
        words = rng.choices(GOOD + BAD + PLAIN, k=LENGTH)
        label = int(sum(w in GOOD for w in words) > sum(w in BAD for w in words))
        encoded = tok(" ".join(words), padding="max_length", max_length=LENGTH)
        rows.append({"input_ids": encoded["input_ids"],
                     "attention_mask": encoded["attention_mask"], "labels": label})
    return rows


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((np.argmax(prediction.predictions, -1)
                               == prediction.label_ids).mean())}


def tiny_bert() -> BertForSequenceClassification:
    return BertForSequenceClassification(BertConfig(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2))


class Sentiment(TransformersTrainable):
    batches = BATCHES
    # the LR schedule spans the run; everything else a TrainingArguments field as usual
    args = {"max_steps": STEPS * BATCHES, "per_device_eval_batch_size": 128, "use_cpu": True}
    compute_metrics = staticmethod(accuracy)

    def model_init(self, hparams):
        return tiny_bert()

    def datasets(self, hparams):
        return sentences(512, 0), sentences(256, 1)
