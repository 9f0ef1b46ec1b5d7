"""The error every part of the package raises for a problem with the user's files or arguments."""


class UserInputError(Exception):
    """A problem with the user's files or arguments: reported as one line, exit status 2 (by
    fairseq_ext.cli.run_cli)."""
