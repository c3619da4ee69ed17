"""Names of the files a run writes into its ``output_dir`` (one place, so writers and readers agree).

Besides Trainer's own files (``trainer_state.json``, ``*_results.json``, checkpoints), a run of
``scripts/finetune.py`` leaves:
"""

from __future__ import annotations

RECIPE_FILE = "recipe.yaml"  # the resolved recipe as trained (peak at this run's global batch); rerunnable
PLAN_FILE = "plan.json"  # steps, warmup, global batch, the peak and how it was chosen, schedule transitions
SCHEDULE_FILE = "schedule.json"  # the schedule's transitions, written when training starts
SPIKES_FILE = "spikes.json"  # loss spikes and the transition each lines up with
DIVERGENCE_FILE = "divergence.json"  # what the divergence guard saw when it stopped or skipped
CURVES_FILE = "training_curves.png"  # LR, loss, gradient norm and metric against optimizer steps
LR_FINDER_JSON = "lr_finder.json"  # the LR range test's curve, suggestion and reason
LR_FINDER_PNG = "lr_finder.png"  # its picture
PREEMPTION_FILE = "preempted.json"  # the signal, the step and the checkpoint a preempted run stopped at
# Inside every checkpoint folder: the plan (steps, warmup, peak, global batch) the checkpoint was trained
# under, so that a resume under a different plan is caught (--replan accepts it).
CHECKPOINT_PLAN_FILE = "ftrecipes_plan.json"

# Written by Trainer.save_state (transformers' TRAINER_STATE_NAME); named here too so that readers of
# a finished run (curves, benchmarks) need not import transformers.
TRAINER_STATE_FILE = "trainer_state.json"
