"""Session fixtures for the squad tests (and the stages built on them)."""
