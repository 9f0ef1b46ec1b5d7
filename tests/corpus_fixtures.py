"""Session fixtures for the corpus tests (and the stages built on them)."""
