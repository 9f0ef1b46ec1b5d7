#!/usr/bin/env python
"""Does a masked-LM checkpoint copy names? (fairseq_ext.commands.copy_probe)"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.copy_probe:main")
