#!/usr/bin/env python
"""Plot fairseq JSON training logs (``common.log_format=json``) as PNG curves against updates.

The command lives in fairseq_ext.commands.plot_logs
(installed as `roberta-plot-logs`); --help lists its options.
"""

from fairseq_ext.commands.plot_logs import cli

if __name__ == "__main__":
    cli()
