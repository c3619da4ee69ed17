"""Trainer's num_items_in_batch assumption, checked per model (transformers#47688)."""

import torch

from ftrecipes.testing import tiny_causal_lm, tiny_model_for_sequence_classification
from ftrecipes.training.loss_scaling import loss_uses_num_items


def test_bert_classification_head_drops_num_items_and_the_causal_lm_uses_it():
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 9, 8, 3, 0]])
    mask = (ids != 0).long()
    classifier = tiny_model_for_sequence_classification(num_labels=3).train()
    assert (
        loss_uses_num_items(classifier, {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2])})
        is False
    )
    assert classifier.training  # its mode is restored
    lm = tiny_causal_lm()
    assert (
        loss_uses_num_items(lm, {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
        is True
    )
    assert not lm.training
