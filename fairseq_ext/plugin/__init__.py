"""The fairseq plugin: task ``squad2``, criterion ``span_qa``, model ``roberta_span_qa`` (registered on
import), and torch's weights-only allow-list for checkpoints of every fairseq vintage
(fairseq_ext.checkpoints).

``fairseq-hydra-train --user-dir fairseq_ext`` imports it through the package (fairseq is already
imported then, also in spawned workers and under torchrun); our own tools that need it import it
explicitly: ``import fairseq_ext.plugin``.
"""

from fairseq_ext import checkpoints  # noqa: F401  (allow-list)
from fairseq_ext.plugin import criterions, models, tasks  # noqa: F401  (registers them)
