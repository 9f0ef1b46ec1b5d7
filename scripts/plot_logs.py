#!/usr/bin/env python
"""Plot fairseq JSON training logs (``common.log_format=json``) as PNG curves against updates.

The command lives in fairseq_ext.commands.plot_logs
(installed as `roberta-plot-logs`); --help lists its options.
"""

from fairseq_ext.cli import run_cli

if __name__ == "__main__":  # the command is imported under run_cli: Ctrl-C during imports is one line
    run_cli("fairseq_ext.commands.plot_logs:main")
