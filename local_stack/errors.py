"""Errors of the local stack itself (not of the functions it runs)."""

from __future__ import annotations


class LocalStackError(Exception):
    """Bad input (template, ENV_VARS file, port): the message names the culprit in one line."""


class TemplateError(LocalStackError):
    """The template cannot be loaded or uses something the local stack cannot emulate."""


class EnvVarsError(LocalStackError):
    """The ENV_VARS file is missing, not JSON, or names a function the template lacks."""


class PortInUseError(LocalStackError):
    """The gateway's port is taken by another process."""


class SettingsError(LocalStackError):
    """A function's environment holds a setting the domain's Settings reject."""
