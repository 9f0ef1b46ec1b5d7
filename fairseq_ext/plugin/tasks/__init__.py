"""fairseq tasks of the plugin (registered on import)."""

from fairseq_ext.plugin.tasks import squad2  # noqa: F401
