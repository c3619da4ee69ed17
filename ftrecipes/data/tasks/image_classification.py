"""Image classification (``image``): numeric image arrays -> one class per image.

No tokenizer: the image column (``--image_column_name``, default ``pixel_values``) is passed to the
model as ``pixel_values`` and batches are stacked by ``DefaultDataCollator``. Model:
``AutoModelForImageClassification``, or ``model_name_or_path: small-cnn`` for a freshly initialised
:class:`~ftrecipes.models.cnn.SmallCNNForImageClassification` sized from the data. Metrics as for text
classification (accuracy, macro F1); best model by accuracy.
"""

from __future__ import annotations

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks._common import check_columns
from ftrecipes.data.tasks.base import PreparedTask, Task


def prepare_image_classification(
    raw, tokenizer=None, *, image_column_name: str | None = None, label_column_name: str | None = None
) -> PreparedTask:
    """``pixel_values`` + ``labels`` splits of an image data set (already numeric arrays, e.g. the bundled
    digits), a ``DefaultDataCollator`` and the label names from the ``ClassLabel`` feature.

    The splits are formatted as torch tensors, so batches are stacked without Python-list conversion.
    ``tokenizer`` is unused (images have none); it is there so every task preprocesses alike.
    """
    from datasets import ClassLabel, DatasetDict
    from transformers import DefaultDataCollator

    image_column_name = image_column_name or "pixel_values"
    label_column_name = label_column_name or "label"
    check_columns(raw, {"--image_column_name": image_column_name})
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    feature = raw["train"].features[label_column_name]
    if isinstance(feature, ClassLabel):
        label_list = list(feature.names)
    else:
        values = sorted(set(raw["train"][label_column_name]))
        if values != list(range(len(values))):
            raise ConfigError(
                "--label_column_name",
                label_column_name,
                "image labels must be a ClassLabel or ids 0..N-1",
                "give integer class ids",
            )
        label_list = [str(v) for v in values]
    prepared = DatasetDict()
    for split, ds in raw.items():
        if label_column_name in ds.column_names and label_column_name != "labels":
            ds = ds.rename_column(label_column_name, "labels")
        if image_column_name != "pixel_values":
            ds = ds.rename_column(image_column_name, "pixel_values")
        keep = [c for c in ("pixel_values", "labels") if c in ds.column_names]
        ds = ds.remove_columns([c for c in ds.column_names if c not in keep])
        prepared[split] = ds.with_format("torch")
    return PreparedTask(TASK.short, prepared, DefaultDataCollator(), label_list)


class ImageClassification(Task):
    name = "image-classification"
    short = "image"
    aliases = ()
    auto_model = "AutoModelForImageClassification"
    flags = {"image_column_name": "image_column_name", "label_column_name": "label_column_name"}
    metric_names = ("accuracy", "f1", "precision", "recall")
    metric_for_best_model = "accuracy"
    greater_is_better = True
    uses_tokenizer = False
    head_suffixes = ("ForImageClassification",)

    preprocess = staticmethod(prepare_image_classification)

    def compute_metrics(self, prepared=None, **metric_kwargs):
        from ftrecipes.data.metrics import classification_metrics

        return classification_metrics()


TASK = ImageClassification()
