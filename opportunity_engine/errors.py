"""Refusals: what the engine says when it will not do what was asked, for a reason the user can act on.

Every user-facing refusal derives from :class:`Refusal`, and its message is written for the user
("Cannot approve yet: no CIP plan."). Pages show a Refusal as advice and nothing else: any other
exception (a pandas ValueError, a bug) goes to app.py's error handler, is logged, and the user
sees only that something went wrong. The subclasses keep the built-in type they replace
(ValueError, PermissionError), so code and tests that expect those still see them.
"""
from __future__ import annotations


class Refusal(Exception):
    """The engine refuses a request; the message is safe and meant to be shown to the user."""


class InvalidInput(Refusal, ValueError):
    """A value breaks a rule (a field's, a plan's phasing, a status move); the message names it."""


class NotAllowed(Refusal, PermissionError):
    """The user's role may not do this."""
