"""The fairseq plugin: task ``squad2``, criterion ``span_qa``, model ``roberta_span_qa``, registered with
fairseq on import. It only registers: what training needs changed in fairseq and torch (the checkpoint
allow-list, trusted rank-0 broadcasts) is applied by whoever trains (see
fairseq_ext.training.distributed.apply_compat_patches).

``fairseq-hydra-train --user-dir fairseq_ext`` imports it through the package (fairseq is already
imported then, also in spawned workers and under torchrun or srun); our own tools that need it import it
explicitly: ``import fairseq_ext.plugin``.
"""

from fairseq_ext.plugin import criterions, models, tasks  # noqa: F401  (registers them)
