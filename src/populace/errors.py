"""The errors every layer raises, defined below all of them: a user's mistake, and a
storage that failed."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-supplied setting is not allowed; the message names field, value and what is."""


class StorageFault(RuntimeError):
    """The run's storage failed: its checkpoint storage or its store is full, unwritable,
    gone, or locked past its bound. Not a member's fault: the run stops, no member is
    marked failed, and the same command resumes once the cause is fixed. The message
    names the storage, the path and the cause."""

    exit_status = 75  # sysexits.h's EX_TEMPFAIL: try again once it is fixed
