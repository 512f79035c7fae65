"""User-facing errors: the CLI turns these into one line and exit status 2."""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad argument, missing file, corrupt checkpoint)."""
