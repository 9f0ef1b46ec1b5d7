"""fairseq models of the plugin (registered on import)."""

from fairseq_ext.plugin.models import roberta_span_qa  # noqa: F401
