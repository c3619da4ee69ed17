#!/usr/bin/env python
"""Fine-tune a Transformers model with an ftrecipes recipe.

    accelerate launch scripts/finetune.py --recipe cls                       # bundled MiniLM on BBC News
    accelerate launch scripts/finetune.py --recipe cls --learning_rate 2e-5 --num_train_epochs 5
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 scripts/finetune.py --recipe cls
    python scripts/finetune.py --recipe token-cls --output_dir runs/ner
    python scripts/finetune.py --help                                        # every flag

Precedence: command line > recipe file > Recipe class defaults. Exit codes: 0 done, 1 diverged,
2 bad input (one line on stderr, output_dir untouched).
"""

import sys

from ftrecipes.job.run import main

if __name__ == "__main__":
    sys.exit(main())
