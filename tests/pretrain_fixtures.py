"""Session fixtures for the pretrain tests (and the stages built on them)."""
