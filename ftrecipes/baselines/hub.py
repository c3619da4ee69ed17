"""Whether a card can run here: the Hub reachable, or forbidden by the offline variables."""

from __future__ import annotations

import os
import re
import socket
from typing import Optional

from ftrecipes.baselines.cards import BaselineCard
from ftrecipes.config.env import env_true


def hub_offline() -> bool:
    """Whether the environment forbids the Hub: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` (what
    ``huggingface_hub.is_offline_mode`` honours) or ``HF_DATASETS_OFFLINE`` (what ``datasets`` adds) set true."""
    # huggingface_hub and datasets read these variables once, at import (is_offline_mode() returns that
    # frozen value); they are read again here, with the same truth values, so a variable set after
    # import (a launcher, a test) still counts.
    return any(env_true(v) for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the Hub endpoint (``HF_ENDPOINT``) succeeds within ``timeout`` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    host, _, port = host.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_reason(card: BaselineCard, *, probe: bool = True) -> Optional[str]:
    """Why ``card`` cannot run here (one line), or ``None`` when it can. Checked before any run."""
    names = card.hub_names()
    if not names:
        return None
    what = " and ".join(names)
    if hub_offline():
        return (
            f"card {card.name!r} needs the Hugging Face Hub ({what}) but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; "
            "run it on a machine with Hub access"
        )
    if probe and not hub_reachable():
        return (
            f"card {card.name!r} needs the Hugging Face Hub ({what}), which is not reachable from here; run it on a "
            "machine with Hub access"
        )
    return None


__all__ = ["hub_offline", "hub_reachable", "unreachable_reason"]
