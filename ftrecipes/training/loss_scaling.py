"""Whether a model's loss really divides by ``num_items_in_batch`` — what Trainer assumes of every model
whose ``forward`` takes ``**kwargs``.

Since transformers 4.46 Trainer passes ``num_items_in_batch`` (the labels of the whole accumulation
window, summed over processes) to such models, then (a) does not divide their loss by the number of
accumulation steps and (b) multiplies it by the number of processes (``average_tokens_across_devices``).
That is right for heads whose loss is ``sum / num_items_in_batch``. Heads that declare ``**kwargs`` but
compute a plain per-batch mean (``CrossEntropyLoss()`` inline, as BERT's sequence-classification head
does) get a loss, and gradients, ``gradient_accumulation_steps x num_processes`` times too large
(transformers#47688): the same global batch trains differently on 1 process, on 2, or with
accumulation — through gradient clipping and Adam's epsilon — although the LR trace is identical.

Reading the head's source would be fragile; the loss itself says it: evaluated twice on one batch with
``num_items_in_batch`` ``n`` and ``2 n``, a loss that uses it halves, one that drops it does not.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch


def loss_uses_num_items(model: torch.nn.Module, inputs: Mapping[str, Any]) -> bool:
    """``True`` when ``model(**inputs, num_items_in_batch=n).loss`` depends on ``n``.

    Two forward passes without gradients, in eval mode (no dropout, so no random numbers are drawn and a
    resumed run stays identical to an uninterrupted one); the model's train/eval mode is restored.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # a tensor, as Trainer passes it (some heads move it to the loss's device)
            losses = [model(**inputs, num_items_in_batch=torch.tensor(n, device=device)).loss for n in (1, 2)]
    except (TypeError, AttributeError, ValueError):
        return True  # a forward that cannot take it here: keep Trainer's own assumption
    finally:
        model.train(training)
    if any(loss is None for loss in losses):
        return True  # no loss to compare: keep Trainer's own assumption
    once, twice = (loss.detach().float() for loss in losses)
    return not torch.allclose(once, twice, rtol=1e-3, atol=0.0)


__all__ = ["loss_uses_num_items"]
