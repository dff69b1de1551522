"""The one error type of `difflab.data`."""

from __future__ import annotations


class DatasetError(ValueError):
    """A data set is missing, truncated, corrupted or not what it claims to be.

    The message names the file, says what is wrong with it and what to do. It is a ValueError
    so that the CLI reports it as one line instead of a traceback.
    """
