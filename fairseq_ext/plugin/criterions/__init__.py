"""fairseq criteria of the plugin (registered on import)."""

from fairseq_ext.plugin.criterions import span_qa  # noqa: F401
