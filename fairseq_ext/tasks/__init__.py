"""fairseq tasks of the plugin (registered on import)."""
