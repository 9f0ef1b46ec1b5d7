"""fairseq ``--user-dir`` plugin: SQuAD v2 span QA for RoBERTa (task ``squad2``, criterion ``span_qa``,
model ``roberta_span_qa``), plus the fairseq-free pieces shared with the Hugging Face side
(``fairseq_ext.bpe``, ``fairseq_ext.squad``).

Importing the package registers the fairseq components when fairseq is installed; without fairseq
(an HF-only environment) the shared pieces still import.
"""

import importlib.util

if importlib.util.find_spec("fairseq") is not None:
    # checkpoints: torch's weights-only allow-list for fairseq 0.9/0.10 checkpoints (argparse args), and
    # trust_rank0_broadcasts: the restored state rank 0 sends to the other ranks loads there; so plain
    # fairseq-hydra-train, spawned multi-GPU workers and torchrun/srun ranks can restore them too.
    from fairseq_ext import checkpoints, criterions, models, tasks  # noqa: F401  (registers them)
    from fairseq_ext.training.distributed import trust_rank0_broadcasts

    trust_rank0_broadcasts()
