"""The fairseq plugin: task ``squad2``, criterion ``span_qa``, model ``roberta_span_qa`` (registered on
import), torch's weights-only allow-list for checkpoints of every fairseq vintage
(fairseq_ext.checkpoints), and, for data-parallel runs, the restored checkpoint state that rank 0
broadcasts trusted by the other ranks (fairseq_ext.training.distributed.trust_rank0_broadcasts).

``fairseq-hydra-train --user-dir fairseq_ext`` imports it through the package (fairseq is already
imported then, also in spawned workers and under torchrun or srun); our own tools that need it import it
explicitly: ``import fairseq_ext.plugin``.
"""

from fairseq_ext import checkpoints  # noqa: F401  (allow-list)
from fairseq_ext.plugin import criterions, models, tasks  # noqa: F401  (registers them)
from fairseq_ext.training.distributed import trust_rank0_broadcasts

trust_rank0_broadcasts()
