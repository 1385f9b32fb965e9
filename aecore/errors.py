"""Errors that modules without torch (aecore.manifest) raise too."""


class CheckpointError(ValueError):
    """A file is not a usable checkpoint; the message names the file and the reason."""
