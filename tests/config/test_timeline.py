"""Timeline: durations in optimizer steps, and the total equal to transformers.Trainer's own count."""

import pytest
import torch
from accelerate.data_loader import prepare_data_loader
from transformers import Trainer, TrainingArguments

from ftrecipes import ConfigError, Timeline
from ftrecipes.config.timeline import resolve_duration


class TinyData(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i)]), "labels": torch.tensor(0.0)}


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, x, labels=None):
        return {"loss": ((self.w(x).squeeze(-1) - labels) ** 2).mean()}


SHAPES = [
    # n, batch, processes, accumulation, epochs, max_steps, drop_last
    (100, 8, 1, 1, 3.0, -1, False),
    (101, 8, 1, 1, 3.0, -1, False),  # uneven last batch
    (100, 4, 2, 1, 3.0, -1, False),
    (99, 4, 3, 1, 2.0, -1, False),  # uneven across processes
    (100, 4, 1, 2, 3.0, -1, False),
    (103, 4, 2, 3, 2.5, -1, False),  # fractional epochs, partial accumulation window
    (100, 8, 1, 1, 3.0, 17, False),  # max_steps wins
    (101, 8, 2, 1, 1.0, -1, True),  # drop_last
    (7, 8, 1, 4, 1.0, -1, False),  # fewer examples than one batch
]


@pytest.mark.parametrize("n,batch,procs,accum,epochs,max_steps,drop_last", SHAPES)
def test_total_steps_equal_trainer(tmp_path, n, batch, procs, accum, epochs, max_steps, drop_last):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        num_train_epochs=epochs,
        max_steps=max_steps,
        dataloader_drop_last=drop_last,
        report_to=[],
        use_cpu=True,
    )
    trainer = Trainer(model=TinyModel(), args=args, train_dataset=TinyData(n))
    dataloader = trainer.get_train_dataloader()
    if procs > 1:
        # What each rank sees once Accelerate shards the loader over `procs` processes (rank 0;
        # even_batches makes every rank equal). Trainer counts steps from this length.
        dataloader = prepare_data_loader(
            dataloader, num_processes=procs, process_index=0, put_on_device=False, even_batches=True
        )
    _, per_epoch, *_, trainer_max_steps = trainer.set_initial_training_values(args, dataloader)
    ours = Timeline(n, batch, procs, accum, epochs, max_steps, drop_last)
    assert ours.total_steps == trainer_max_steps
    if max_steps < 0:
        assert ours.steps_per_epoch == per_epoch
    assert ours.global_batch_size == batch * procs * accum


def test_same_global_batch_same_steps():
    """(1 proc, batch 2b) == (2 procs, batch b) == (1 proc, batch b, accumulation 2)."""
    for n in (100, 101, 127, 5):
        a = Timeline(n, 8).total_steps
        assert (
            a
            == Timeline(n, 4, num_processes=2).total_steps
            == Timeline(n, 4, gradient_accumulation_steps=2).total_steps
        )


def test_durations():
    t = Timeline(num_examples=1000, per_device_train_batch_size=10, num_train_epochs=2)  # 100 steps/epoch
    assert t.total_steps == 200
    assert t.resolve(50) == 50
    assert t.resolve(0.05) == 10
    assert t.resolve("5%") == 10
    assert t.resolve("2.5%") == 5
    assert t.resolve("1ep") == 100 and t.resolve("0.5ep") == 50 and t.resolve("1epoch") == 100
    assert t.resolve("300steps") == 300 and t.resolve("0.1") == 20
    assert t.resolve(0.0) == 0
    assert resolve_duration(0.015, total_steps=1000) == 15  # rounds up like TrainingArguments


@pytest.mark.parametrize("bad", ["five", -3, 1.5, "150%", True, [1]])
def test_bad_durations_name_the_field(bad):
    with pytest.raises(ConfigError, match="^warmup="):
        Timeline(100, 10).resolve(bad, "warmup")


def test_bad_sizes():
    with pytest.raises(ConfigError, match="per_device_train_batch_size"):
        Timeline(100, 0)
    with pytest.raises(ConfigError, match="num_train_epochs"):
        Timeline(100, 4, num_train_epochs=0)
