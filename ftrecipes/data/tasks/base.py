"""What a task is: the :class:`Task` declaration every module of :mod:`ftrecipes.data.tasks` fills in.

A task says, in one place, everything the main job needs to train it:

* its names: ``name`` (the recipe's ``task:`` value), ``short`` (the name in code and tests, e.g.
  ``cls``) and ``aliases`` (Hugging Face pipeline-style names users already type);
* the ``AutoModelFor...`` class (by name, resolved only when a model is built);
* the script flags it reads (``flags``: flag -> keyword of :meth:`Task.preprocess`);
* preprocessing and collator (:meth:`Task.preprocess`, returning a :class:`PreparedTask`);
* the model-config overrides (labels, ``problem_type``) and the head-size check;
* ``compute_metrics``, the ``preprocess_logits_for_metrics`` hook and the metric names it reports;
* its default ``metric_for_best_model``.

This module and the task modules import neither torch nor transformers at import time (the recipe
layer reads the task names from here); the heavy imports happen inside the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict


@dataclass
class PreparedTask:
    """Tokenized splits plus everything a Trainer and a model config need for one task."""

    task: str
    datasets: "DatasetDict"
    data_collator: Callable[[list[dict]], dict]
    label_list: list[str] | None = None

    @property
    def num_labels(self) -> int | None:
        return None if self.label_list is None else len(self.label_list)

    @property
    def label2id(self) -> dict[str, int] | None:
        return None if self.label_list is None else {name: i for i, name in enumerate(self.label_list)}

    @property
    def id2label(self) -> dict[int, str] | None:
        return None if self.label_list is None else dict(enumerate(self.label_list))


class Task:
    """One trainable task. Subclass it in a module of :mod:`ftrecipes.data.tasks` and assign an instance to
    the module-level name ``TASK``; the registry finds it there (no other file lists tasks)."""

    name: ClassVar[str]
    short: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    auto_model: ClassVar[str]
    # Flags of finetune.py (ScriptArguments fields or recipe fields) -> keyword of preprocess().
    flags: ClassVar[Mapping[str, str]] = {}
    metric_names: ClassVar[tuple[str, ...]] = ()
    metric_for_best_model: ClassVar[str] = "loss"
    greater_is_better: ClassVar[bool] = False
    uses_tokenizer: ClassVar[bool] = True
    # Whether preprocess() takes a streamed train split (``--streaming``: a datasets.IterableDataset,
    # read lazily and never scanned; see ftrecipes.data.streaming).
    supports_streaming: ClassVar[bool] = False
    # Architectures (config.architectures suffixes) that carry this task's head; the head check
    # treats a checkpoint with any registered task's head as fine-tuned.
    head_suffixes: ClassVar[tuple[str, ...]] = ()

    # -- data ------------------------------------------------------------------------------------
    def preprocess(self, raw, tokenizer, **kwargs) -> PreparedTask:
        """Raw splits -> model-input splits, collator and label names. Its keyword parameters are the
        options :func:`ftrecipes.data.tasks.prepare_task` accepts for this task."""
        raise NotImplementedError

    # -- model -----------------------------------------------------------------------------------
    def auto_model_class(self):
        """The ``transformers`` Auto class that loads a model for this task."""
        import transformers

        return getattr(transformers, self.auto_model)

    def config_overrides(self, prepared: PreparedTask) -> dict[str, Any]:
        """Model-config fields the data decides (``num_labels``, ``id2label``, ``label2id``...)."""
        if prepared.label_list is None:
            return {}
        from ftrecipes.data.tasks._common import label_config_kwargs

        return label_config_kwargs(prepared.label_list)

    def check_head(
        self, config, prepared: PreparedTask, model_name_or_path: str | None, head_suffixes: tuple[str, ...]
    ) -> None:
        """Raise a :class:`~ftrecipes.config.errors.ConfigError` when the checkpoint's head cannot fit the data.

        ``config`` is the checkpoint's config as loaded (before the overrides). A base checkpoint (no
        head in ``architectures``) takes a head of any size; see :func:`check_label_count`. ``head_suffixes``:
        every registered task's (:func:`ftrecipes.data.tasks.registered_head_suffixes`), since BERT's sequence and token
        heads share the name ``classifier`` and a checkpoint with either clashes with a new head of another size.
        """
        n = self.config_overrides(prepared).get("num_labels")
        if n is None:
            return
        from ftrecipes.data.tasks._common import check_label_count, with_head_size

        check_label_count(n, with_head_size(config, n, head_suffixes), model_name_or_path, head_suffixes)

    # -- evaluation ------------------------------------------------------------------------------
    def compute_metrics(self, prepared: PreparedTask | None = None, **metric_kwargs) -> Callable | None:
        """The Trainer ``compute_metrics`` for this task (``None``: Trainer reports the loss only)."""
        return None

    def preprocess_logits_for_metrics(self) -> Callable | None:
        """The Trainer ``preprocess_logits_for_metrics`` hook that goes with :meth:`compute_metrics`."""
        return None

    def final_metrics(self, metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
        """Metrics derived once evaluation is done (e.g. ``exp(eval_loss)``); default: as they are."""
        return metrics

    def __repr__(self) -> str:
        return f"<task {self.name!r} ({self.short})>"
