"""RoBERTa continued pretraining with fairseq, SQuAD v2 fine-tuning, Hugging Face export.

One package laid out by stage: ``tokenizer``, ``corpus``, ``squad`` (fairseq- and torch-free), ``plugin``
(the fairseq ``--user-dir`` plugin), ``training``, ``export``, ``hf`` and ``commands`` (the CLIs).

fairseq's ``--user-dir fairseq_ext`` imports this package after fairseq itself (a plain
fairseq-hydra-train, its spawned workers): the plugin is registered then, and the compatibility patches
training needs are applied (fairseq_ext.training.distributed.apply_compat_patches; our launcher imports
the package before fairseq and applies them itself, in every training process). Anywhere else importing
the package costs nothing, so fairseq-free tools (BPE, split, metric, HF evaluation) never load fairseq or
torch; tools that need the plugin import ``fairseq_ext.plugin``.
"""

import sys

if sys.modules.get("fairseq") is not None:  # None: an import of fairseq was blocked
    from fairseq_ext import plugin  # noqa: F401  (registers the task, criterion and model)
    from fairseq_ext.training.distributed import apply_compat_patches

    apply_compat_patches()
