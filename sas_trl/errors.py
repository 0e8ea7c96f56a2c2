"""The project's one user-error type.

A `UserError` is a problem the user can fix (a recipe key, a flag, a file, a column, a value). The command
line prints its message on one line and exits with code 2, without a traceback. Raise it before any model
or data work starts wherever the problem can be seen that early.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with user input, reported as one line naming the field, file, column or value."""


class RecipeError(UserError):
    """A problem with a recipe file or a `sas-trl train` flag."""
