"""A tiny BERT classifier on synthetic token ids, trained by a real ``transformers.Trainer`` subclass
(RecipeTrainer) with a recipe's optimizer and scheduler, plus a way to corrupt the loss at chosen optimizer steps."""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from ftrecipes.training.arguments import apply_recipe

# A 2-layer, 32-wide model gains nothing from intra-op threads, and on a shared 2-core machine their
from ftrecipes.training.trainer import RecipeTrainer

# spin-waiting makes these tests 3-4x slower under load.
torch.set_num_threads(1)

CONFIG = dict(
    vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=2
)


class InjectedLossModel(BertForSequenceClassification):
    """Multiplies the training loss by ``inject[k]`` on the ``k``-th training forward (1-based). Without
    gradient accumulation forward ``k`` is optimizer step ``k``, so ``{14: 5.0}`` spikes global step 14
    and ``{10: float("nan")}`` makes step 10 non-finite."""

    inject: dict[int, float] = {}

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        outputs = super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        if self.training:
            self._calls = getattr(self, "_calls", 0) + 1
            factor = self.inject.get(self._calls)
            if factor is not None:
                outputs.loss = outputs.loss * factor
        return outputs


def tiny_model(inject: dict[int, float] | None = None, seed: int = 0) -> InjectedLossModel:
    torch.manual_seed(seed)
    model = InjectedLossModel(BertConfig(**CONFIG))
    model.inject = dict(inject or {})
    return model


def tiny_dataset(n: int = 64, length: int = 16, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, CONFIG["vocab_size"], (n, length), generator=generator)
    labels = (ids[:, 1] > CONFIG["vocab_size"] // 2).long()  # learnable from one token
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})


def accuracy(eval_pred) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def make_trainer(output_dir, recipe, *, model=None, optimizer=None, max_steps: int = 20, **arguments) -> Trainer:
    """A :class:`~ftrecipes.training.trainer.RecipeTrainer` on the tiny model: the recipe's optimizer (or the one
    given, e.g. with several param groups) at the recipe's own peak, and its schedule sized by the
    Trainer. ``arguments`` override the TrainingArguments below."""
    model = model if model is not None else tiny_model()
    defaults = dict(
        per_device_train_batch_size=4,
        per_device_eval_batch_size=32,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        max_grad_norm=recipe.max_grad_norm,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        learning_rate=recipe.learning_rate,
    )
    defaults.update(arguments)
    args = apply_recipe(recipe, TrainingArguments(str(output_dir), **defaults), explicit=list(defaults))
    eval_dataset = tiny_dataset(32, seed=1) if defaults.get("eval_strategy", "no") != "no" else None
    return RecipeTrainer(
        recipe=recipe,
        model=model,
        args=args,
        train_dataset=tiny_dataset(),
        eval_dataset=eval_dataset,
        optimizers=(optimizer, None),
        compute_metrics=accuracy if eval_dataset is not None else None,
    )
