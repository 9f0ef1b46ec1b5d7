"""fairseq models of the plugin (registered on import)."""
