"""RoBERTa continued pretraining with fairseq, SQuAD v2 fine-tuning, Hugging Face export.

One package laid out by stage: ``tokenizer``, ``corpus``, ``squad`` (fairseq- and torch-free), ``plugin``
(the fairseq ``--user-dir`` plugin), ``training``, ``export``, ``hf`` and ``commands`` (the CLIs).

fairseq's ``--user-dir fairseq_ext`` imports this package after fairseq itself (fairseq-hydra-train,
its spawned workers, torchrun): the plugin is registered then. Anywhere else importing the package
costs nothing, so fairseq-free tools (BPE, split, metric, HF evaluation) never load fairseq or torch;
tools that need the plugin import ``fairseq_ext.plugin``.
"""

import sys

if sys.modules.get("fairseq") is not None:  # None: an import of fairseq was blocked
    from fairseq_ext import plugin  # noqa: F401  (registers the task, criterion and model)
