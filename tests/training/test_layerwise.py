"""Layer-wise LR decay: group peaks follow xi^(L - l), every family maps, weight decay stays off
biases and norms in every group, and a real Trainer run (1 process and 2 via torchrun) trains every
group at exactly its peak x schedule(step) (the two-process runs are in test_multinode.py)."""

import shutil

import pytest
import torch
from conftest import assert_logged_group_lrs, on_tiny, tiny_job_argv

from ftrecipes import Timeline, get_recipe
from ftrecipes.config.errors import ConfigError
from ftrecipes.job.run import main
from ftrecipes.models.depth import parameter_depths
from ftrecipes.training.layerwise import group_peaks, layerwise_parameter_groups
from ftrecipes.training.optim import create_optimizer
from ftrecipes.training.weight_decay import decay_parameter_names

N_TRAIN = 96
XI = 0.8


def _tiny(config_cls, model_cls, **kwargs):
    import transformers

    config = getattr(transformers, config_cls)(**kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(transformers, model_cls)(config)


ENC = dict(vocab_size=64, hidden_size=16, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
DEC = dict(
    vocab_size=64,
    hidden_size=16,
    num_attention_heads=2,
    num_key_value_heads=2,
    intermediate_size=32,
    max_position_embeddings=32,
)
FAMILIES = {
    "bert": ("BertConfig", "BertForSequenceClassification", dict(ENC, num_hidden_layers=3)),
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification", dict(ENC, num_hidden_layers=3, pad_token_id=1)),
    "deberta-v2": (
        "DebertaV2Config",
        "DebertaV2ForSequenceClassification",
        dict(
            ENC,
            num_hidden_layers=3,
            relative_attention=True,
            position_buckets=8,
            conv_kernel_size=3,
            norm_rel_ebd="layer_norm",
        ),
    ),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", dict(ENC, num_hidden_layers=3, embedding_size=8)),
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(DEC, num_hidden_layers=3)),
    "mistral": ("MistralConfig", "MistralForSequenceClassification", dict(DEC, num_hidden_layers=3, pad_token_id=0)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(DEC, num_hidden_layers=3)),
    "gpt2": (
        "GPT2Config",
        "GPT2ForSequenceClassification",
        dict(vocab_size=64, n_embd=16, n_head=2, n_layer=3, n_positions=32, pad_token_id=0),
    ),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_maps_to_head_layers_and_embeddings(family):
    model = _tiny(*FAMILIES[family][:2], **FAMILIES[family][2])
    recipe = get_recipe(
        "llrd-cls", layerwise_lr_decay=XI, head_lr_multiplier=3.0, embedding_lr_multiplier=0.5, weight_decay=0.05
    )
    groups = layerwise_parameter_groups(model, recipe, 1e-3)
    peaks = group_peaks(groups)
    L = 3
    # head first (group 0: the Trainer's own `learning_rate` log), then layers top-down, then embeddings
    assert list(peaks) == ["head", "layer_2", "layer_1", "layer_0", "embeddings"], family
    assert peaks["head"] == pytest.approx(3e-3)
    for layer in range(L):
        assert peaks[f"layer_{layer}"] == pytest.approx(1e-3 * XI ** (L - layer)), (family, layer)
    assert peaks["embeddings"] == pytest.approx(1e-3 * XI ** (L + 1) * 0.5)
    # every trainable parameter in exactly one group; weight decay only on what the Trainer decays
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) == sum(1 for p in model.parameters() if p.requires_grad)
    decay = {id(p) for n, p in model.named_parameters() if n in decay_parameter_names(model)}
    for group in groups:
        assert all((id(p) in decay) == (group["weight_decay"] == 0.05) for p in group["params"]), (
            family,
            group["name"],
        )
    names = {n: depth for n, (depth, _) in parameter_depths(model).items()}
    assert any(
        "bias" in n or "norm" in n.lower() for n in names if names[n] == "layer_1"
    )  # norms/biases sit inside layers
    assert any(g["weight_decay"] == 0.0 and g["name"] == "layer_1" for g in groups)


def test_unmappable_architecture_names_the_module():
    from ftrecipes.models.cnn import SmallCNNConfig, SmallCNNForImageClassification

    with pytest.raises(
        ConfigError, match=r"layerwise_lr_decay=0.95: cannot place module 'features.0'.*set layerwise_lr_decay"
    ):
        create_optimizer(get_recipe("llrd-cls"), SmallCNNForImageClassification(SmallCNNConfig(num_labels=3)))


def test_no_llrd_keeps_the_two_trainer_groups():
    from ftrecipes.testing import tiny_model

    optimizer = create_optimizer(get_recipe("cls"), tiny_model("cls"), learning_rate=1e-4)
    assert len(optimizer.param_groups) == 2 and "name" not in optimizer.param_groups[0]


# ------------------------------------------------------------------------------------------------
# A real Trainer run through scripts/finetune.py


def layerwise_argv(tiny_base, cls_files, output_dir, *extra):
    return tiny_job_argv(
        "llrd-cls", tiny_base, cls_files, output_dir, "--save_strategy", "no", "--layerwise_lr_decay", str(XI),
        "--head_lr_multiplier", "2.0", *extra,
    )  # fmt: skip


def check_every_group_follows_the_schedule(output_dir, processes, batch, epochs=1):
    recipe = on_tiny(get_recipe("llrd-cls", warmup="20%", num_train_epochs=epochs))  # the width rule at hidden 32
    plan = recipe.plan(Timeline(N_TRAIN, batch, processes, 1, num_train_epochs=epochs))
    peak = plan.learning_rate  # sqrt-scaled from batch 16 to 8: every group scales with it
    peaks = {
        "learning_rate": 2.0 * peak,
        "learning_rate/layer_1": peak * XI,
        "learning_rate/layer_0": peak * XI**2,
        "learning_rate/embeddings": peak * XI**3,
    }
    return assert_logged_group_lrs(output_dir, peaks, plan)


def test_every_group_lr_at_every_step_is_its_peak_times_the_schedule(tiny_base, cls_files, tmp_path):
    out = tmp_path / "llrd"
    assert main(layerwise_argv(tiny_base, cls_files, out, "--per_device_train_batch_size", "8")) == 0
    check_every_group_follows_the_schedule(out, processes=1, batch=8)
    assert (out / "training_curves.png").is_file()


def test_a_layerwise_run_resumes_from_its_checkpoint(tiny_base, cls_files, tmp_path):
    """The plan kept with a checkpoint records the run's peak, not the head group's (2x here): the same
    command resumes, and every group's LR after the resume is the uninterrupted run's."""
    extra = (
        "--per_device_train_batch_size",
        "8",
        "--plots",
        "false",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--save_total_limit",
        "10",
    )
    full = tmp_path / "full"
    assert main(layerwise_argv(tiny_base, cls_files, full, *extra)) == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoint-4", resumed / "checkpoint-4")
    assert main(layerwise_argv(tiny_base, cls_files, resumed, *extra)) == 0
    logs = check_every_group_follows_the_schedule(resumed, processes=1, batch=8)
    reference = {e["step"]: e for e in check_every_group_follows_the_schedule(full, processes=1, batch=8)}
    for entry in logs:
        assert {k: v for k, v in entry.items() if k.startswith("learning_rate")} == pytest.approx(
            {k: v for k, v in reference[entry["step"]].items() if k.startswith("learning_rate")}, rel=1e-12
        )


@pytest.mark.parametrize("value", ["0", "1.5", "-0.9"])
def test_decay_outside_0_1_exits_2(tiny_base, cls_files, tmp_path, value, capsys):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code = main(layerwise_argv(tiny_base, cls_files, out, "--layerwise_lr_decay", value))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith(
        f"finetune.py: error: layerwise_lr_decay={float(value)!r}: must lie in (0, 1]"
    )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_unmappable_model_in_the_job_exits_2_before_output_dir(tmp_path, capsys):
    out = tmp_path / "cnn"
    code = main(
        ["--recipe", "cnn-step", "--layerwise_lr_decay", "0.9", "--max_train_samples", "64", "--output_dir", str(out)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(
        "finetune.py: error: layerwise_lr_decay=0.9: cannot place module 'features.0' of a 'ftrecipes-small-cnn' model"
    )
    assert not out.exists()


def test_llrd_with_lora_puts_adapters_in_their_layers_and_the_head_first():
    from ftrecipes.models.lora import apply_peft
    from ftrecipes.testing import tiny_model

    recipe = get_recipe("lora-cls", layerwise_lr_decay=XI)
    model = apply_peft(tiny_model("cls"), recipe)
    groups = layerwise_parameter_groups(model, recipe, 1.0)
    names = {id(p): n for n, p in model.named_parameters()}
    by_group = {}
    for group in groups:
        by_group.setdefault(group["name"], []).extend(names[id(p)] for p in group["params"])
    assert list(by_group) == ["head", "layer_1", "layer_0"]  # frozen embeddings: no group
    assert all(".modules_to_save." in n for n in by_group["head"])
    for layer in (0, 1):
        assert by_group[f"layer_{layer}"] and all(
            f"layer.{layer}." in n and ".lora_" in n for n in by_group[f"layer_{layer}"]
        )
    assert group_peaks(groups) == pytest.approx({"head": 1.0, "layer_1": XI, "layer_0": XI**2})
