"""Exceptions raised by rsim_env.

Every error a user can trigger has its own type, so callers can catch exactly what they expect, and
each inherits from the built-in exception a Python user would reach for first (``ValueError`` for a
bad value, ``TypeError`` for a wrong type, ``KeyError`` for an unknown name). Messages say what was
wrong and what to do instead.
"""

from __future__ import annotations


class RSIMError(Exception):
    """Base class of every rsim_env error."""


class ActionTypeError(RSIMError, TypeError):
    """An action of the wrong type was passed to ``step`` (e.g. a string to the planner)."""


class IllegalActionError(RSIMError, ValueError):
    """An action outside the action space or masked out by ``action_mask``."""


class EpisodeOverError(RSIMError, RuntimeError):
    """A non-``None`` action was passed after the episode ended; call ``reset()`` first."""


class UnknownSuiteError(RSIMError, KeyError):
    """A task-suite name that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownStrategyError(RSIMError, KeyError):
    """A strategy name that is not part of the strategy set."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownEnvError(RSIMError, KeyError):
    """An environment id that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StrategySetError(RSIMError, ValueError):
    """A strategy set that fails validation (duplicate names, no terminating strategy, ...)."""


class DatasetLoadError(RSIMError, RuntimeError):
    """A dataset file or Hub id that could not be loaded in the expected format."""


class ConfigError(RSIMError, ValueError):
    """An environment configuration value that is out of range or inconsistent."""
