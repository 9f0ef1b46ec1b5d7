"""The command-line tools: each module has parse_args, main and cli (the entry point of pyproject.toml);
scripts/*.py and convert/*.py call them."""
