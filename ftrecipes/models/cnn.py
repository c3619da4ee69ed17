"""A small convolutional image classifier as a Transformers ``PreTrainedModel``.

The ``cnn-step`` recipe (the classic CNN baseline: SGD + momentum, step decay) trains this model on the bundled
scikit-learn digits (1x8x8 images, 10 classes) through the same ``Trainer`` path as the text recipes.
Being a ``PreTrainedModel`` registered with ``AutoConfig`` / ``AutoModelForImageClassification``, it
saves and loads like any Hub model (the image task is :mod:`ftrecipes.data.tasks.image_classification`)::

    import ftrecipes.models.cnn  # registers the classes with the Auto* factories
    model = AutoModelForImageClassification.from_pretrained("runs/cnn-step")

Architecture: ``[conv3x3 -> BatchNorm -> ReLU] x2 -> 2x2 max-pool -> global average pool -> linear``.
With the default widths (32, 64) it has ~19k parameters; a step on a batch of 128 digits takes
milliseconds on CPU.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ImageClassifierOutput

# The name a recipe gives as ``model_name_or_path`` to get a freshly initialised SmallCNN.


class SmallCNNConfig(PretrainedConfig):
    """Configuration of :class:`SmallCNNForImageClassification`.

    ``num_channels`` x ``image_size`` x ``image_size`` inputs (``pixel_values``), ``hidden_sizes`` output
    channels of the two conv blocks, ``num_labels`` classes (set ``id2label`` for named classes).
    """

    model_type = "ftrecipes-small-cnn"

    def __init__(
        self,
        num_channels: int = 1,
        image_size: int = 8,
        hidden_sizes: tuple[int, int] | list[int] = (32, 64),
        dropout: float = 0.0,
        **kwargs,
    ):
        self.num_channels = num_channels
        self.image_size = image_size
        self.hidden_sizes = list(hidden_sizes)
        self.dropout = dropout
        super().__init__(**kwargs)


class SmallCNNPreTrainedModel(PreTrainedModel):
    config_class = SmallCNNConfig
    base_model_prefix = "cnn"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module) -> None:
        # Kaiming for the ReLU convs (the usual CNN init); BatchNorm starts as the identity.
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)


class SmallCNNForImageClassification(SmallCNNPreTrainedModel):
    """Two conv blocks (conv 3x3, BatchNorm, ReLU), pooling and a linear head; cross-entropy loss."""

    def __init__(self, config: SmallCNNConfig):
        super().__init__(config)
        c1, c2 = config.hidden_sizes
        self.features = nn.Sequential(
            nn.Conv2d(config.num_channels, c1, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(c2, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> ImageClassifierOutput:
        hidden = self.features(pixel_values).flatten(1)
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(SmallCNNConfig.model_type, SmallCNNConfig, exist_ok=True)
AutoModelForImageClassification.register(SmallCNNConfig, SmallCNNForImageClassification, exist_ok=True)


def small_cnn_config_for(prepared, **overrides) -> SmallCNNConfig:
    """A :class:`SmallCNNConfig` sized for the prepared image task (channels, size, labels)."""
    sample = prepared.datasets["train"][0]["pixel_values"]
    kwargs = dict(
        num_channels=int(sample.shape[0]),
        image_size=int(sample.shape[-1]),
        num_labels=len(prepared.label_list),
        id2label=prepared.id2label,
        label2id=prepared.label2id,
    )
    kwargs.update(overrides)
    return SmallCNNConfig(**kwargs)


__all__ = [
    "SmallCNNConfig",
    "SmallCNNForImageClassification",
    "small_cnn_config_for",
]
