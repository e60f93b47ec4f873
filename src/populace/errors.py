"""The error every layer raises for a user's mistake, defined below all of them."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-supplied setting is not allowed; the message names field, value and what is."""
