"""The base class of errors caused by the user's input (files, configuration, options), not by a bug.

Every error class of the library that describes bad input derives from :class:`UserError`
(``DatasetError``, ``VolumeReadError``, ``CheckpointError``, ``ConfigError``, ``UnsafePathError``,
``DeviceError``, ``LockError``, ``StudyError``, ...). The command line prints such an error as one line
``wssscam <command>: <message>`` and exits with status 1; the message itself has the form
``<file or key>: <problem>``.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a file, a configuration key or an option is wrong; the message names it and the problem."""


class InvalidInputError(UserError, ValueError):
    """An input (data, folds, checkpoint, option) is inconsistent with the run; the message names it."""


class NotReadyError(UserError, RuntimeError):
    """A stage needs results that earlier stages (or other shards) have not produced yet."""


class MissingFileError(UserError, FileNotFoundError):
    """A file the run needs does not exist; the message names it."""


__all__ = ["InvalidInputError", "MissingFileError", "NotReadyError", "UserError"]
