"""Where a model, config or tokenizer comes from — checked without loading it.

``from_pretrained`` takes a local folder or a Hub id and, when either is wrong, fails late (after the
data is loaded) with library tracebacks: a missing folder becomes "Repo id must be in the form...",
and a Hub id offline retries the Hub before "Check your internet connection". :func:`check_model_source`
answers the same question up front, in one line naming the flag:

* a bundled alias (``minilm``) resolves to the folder inside its package;
* an existing local folder must hold the files the load needs (``config.json``; weights as
  ``model.safetensors`` / ``pytorch_model.bin`` or their sharded indexes; a tokenizer file) — the error
  says which files were looked for;
* a name that is not on disk and is not a valid Hub id is a local path that does not exist;
* a Hub id is looked up in the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``,
  no network). Offline (``HF_HUB_OFFLINE=1``, ``huggingface_hub.is_offline_mode()``) a miss is
  reported at once, with the ways forward, and the Hub is never contacted; online, one
  ``HfApi.model_info`` request (no retries) tells a missing, gated or unreachable repository apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from ftrecipes.config.errors import ConfigError


# The files ``from_pretrained`` reads, by part; any one file of a group is enough. The names are the
# ones transformers itself uses (transformers.utils.*_NAME, tokenization_utils_base.*_FILE); the
# tokenizer group adds the vocabulary files of slow tokenizers (WordPiece, BPE, SentencePiece).
def _part_files() -> dict[str, tuple[str, ...]]:
    from transformers.tokenization_utils_base import (
        FULL_TOKENIZER_FILE,
        TOKENIZER_CONFIG_FILE,
    )
    from transformers.utils import (
        CONFIG_NAME,
        SAFE_WEIGHTS_INDEX_NAME,
        SAFE_WEIGHTS_NAME,
        WEIGHTS_INDEX_NAME,
        WEIGHTS_NAME,
    )

    return {
        "config": (CONFIG_NAME,),
        "weights": (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME),
        "tokenizer": (
            FULL_TOKENIZER_FILE,
            TOKENIZER_CONFIG_FILE,
            "vocab.txt",
            "vocab.json",
            "spiece.model",
            "tokenizer.model",
        ),
    }


HUB_TIMEOUT_S = 10.0  # one request, no retries: a reachable Hub answers model_info well within this

# How to proceed when a model cannot be found: the same three ways everywhere.
_WAYS_FORWARD = "give a local folder written by save_pretrained, the bundled 'minilm'"


def _describe(parts: Iterable[str], files: dict[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{part}: {' or '.join(files[part])}" for part in parts)


def check_model_source(
    name: str,
    *,
    field: str = "--model_name_or_path",
    parts: tuple[str, ...] = ("config", "weights"),
    cache_dir: Optional[str] = None,
) -> str:
    """The loadable location of ``name`` (a local folder or a Hub id), checked for the files in ``parts``
    (``config``, ``weights``, ``tokenizer``) without loading anything. Raises :class:`ConfigError`
    naming ``field`` when the load would fail."""
    from ftrecipes.models.names import resolve_model_name_or_path

    location = resolve_model_name_or_path(str(name))  # the bundled alias 'minilm' -> its folder
    files = _part_files()
    path = Path(location).expanduser()
    if path.exists():
        location = _check_local_folder(name, path, field, parts, files)
    elif not _is_hub_id(location):
        raise ConfigError(
            field,
            name,
            f"does not exist (looked for a folder holding {_describe(parts, files)})",
            f"check the path, or {_WAYS_FORWARD} or a Hub id",
        )
    else:
        location = _check_hub_id(name, location, field, parts, files, cache_dir)
    if "config" in parts:
        _check_config_readable(name, location, field, cache_dir)
    return location


def _check_config_readable(name: str, location: str, field: str, cache_dir: Optional[str]) -> None:
    """``config.json`` is there; AutoConfig must also understand it (valid JSON, a known
    ``model_type``). Reading a config costs milliseconds, unlike the weights."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(location, cache_dir=cache_dir)
    except (OSError, ValueError, KeyError) as err:
        first = " ".join(str(err).split()).split(". ")[0].rstrip(".")  # the library's first sentence says what is wrong
        raise ConfigError(
            field,
            name,
            f"has a config.json that transformers cannot read ({first})",
            "re-save the model with save_pretrained, or give another folder, the bundled 'minilm' or a Hub id",
        ) from None


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _check_local_folder(
    name: str, path: Path, field: str, parts: tuple[str, ...], files: dict[str, tuple[str, ...]]
) -> str:
    if not path.is_dir():
        raise ConfigError(
            field, name, "is a file, not a model folder", f"give the folder that holds {_describe(parts, files)}"
        )
    missing = [part for part in parts if not any((path / f).is_file() for f in files[part])]
    if missing:
        checkpoints = sorted(p.name for p in path.glob("checkpoint-*") if p.is_dir())
        hint = f"; it holds {checkpoints[-1]}/, pass that folder instead" if checkpoints else ""
        raise ConfigError(
            field,
            name,
            f"holds no {' and no '.join(missing)} (looked for {_describe(missing, files)}){hint}",
            "give a folder written by save_pretrained, the bundled 'minilm' or a Hub id",
        )
    if "weights" in parts:
        _check_safetensors_header(name, path / files["weights"][0], field)
    return str(path)


def _check_safetensors_header(name: str, weights: Path, field: str) -> None:
    """A truncated or empty ``model.safetensors`` fails only deep inside ``from_pretrained``; its header
    (a few KB, read without the tensors) says so at once."""
    if not weights.is_file():
        return
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            f.keys()
    except Exception as err:  # safetensors raises its own SafetensorError (and OSError); any failure here is the file's
        raise ConfigError(
            field,
            name,
            f"has a {weights.name} that cannot be read ({type(err).__name__}: {' '.join(str(err).split())[:120]})",
            "re-save the model with save_pretrained, or give another folder, the bundled 'minilm' or a Hub id",
        ) from None


def _check_hub_id(
    name: str,
    repo_id: str,
    field: str,
    parts: tuple[str, ...],
    files: dict[str, tuple[str, ...]],
    cache_dir: Optional[str],
) -> str:
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)

    missing = [part for part in parts if not any(cached(f) for f in files[part])]
    if not missing:
        return repo_id
    cache = cache_dir or constants.HF_HUB_CACHE
    what = (
        "is not in the local Hugging Face cache"
        if len(missing) == len(parts)
        else f"has no {' and no '.join(missing)} in the local Hugging Face cache"
    )
    if is_offline_mode():
        raise ConfigError(
            field,
            name,
            f"{what} ({cache}) and the Hub is offline (HF_HUB_OFFLINE=1), nor is it a local folder",
            f"{_WAYS_FORWARD}, or go online (unset HF_HUB_OFFLINE) to download it",
        )
    _ask_hub(name, repo_id, field, what)
    return repo_id


def _ask_hub(name: str, repo_id: str, field: str, what: str) -> None:
    """One ``model_info`` request: is the repository there, readable and reachable? (from_pretrained
    would find out only after the data is loaded, through its own retries)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HTTPError,
        RepositoryNotFoundError,
    )

    try:
        HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        raise ConfigError(
            field,
            name,
            "is a gated model on the Hub",
            "accept its terms on huggingface.co and log in (`hf auth login`), or " + _WAYS_FORWARD,
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            field,
            name,
            "is neither a local folder nor a model on the Hub (or it is private)",
            f"check the spelling, log in (`hf auth login`) for a private model, or {_WAYS_FORWARD}",
        ) from None
    except HfHubHTTPError as err:
        raise ConfigError(
            field,
            name,
            f"{what} and the Hub answered {err.response.status_code if err.response is not None else 'an error'}",
            f"try again later, or {_WAYS_FORWARD}",
        ) from None
    except HTTPError as err:  # the transport failed: no DNS, no route, timeout
        raise ConfigError(
            field,
            name,
            f"{what} and the Hub cannot be reached ({type(err).__name__})",
            f"{_WAYS_FORWARD}, or check the connection (HF_HUB_OFFLINE=1 works offline with cached models)",
        ) from None
