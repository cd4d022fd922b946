"""File inputs as the Cog server hands them over.

coglet turns a URL or a data URI given for a `Path` input into a downloaded temporary file
(a `cog.Path`), but passes any other string through unchanged: `"/etc/passwd"` would arrive
as a path on the server's own disk. Such strings are refused here, in every adapter.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError


def require_upload(name: str, value):
    """`value` if it is an uploaded or fetched file (or None); a `UserError` otherwise."""
    if value is None or isinstance(value, Path):
        return value
    shown = str(value) if len(str(value)) <= 60 else f"{str(value)[:57]}..."
    raise UserError(
        f"{name}: {shown!r} is neither a URL nor an uploaded file. Give an https:// URL or a "
        f"file (a data URI, as `cog predict -i {name}=@photos.zip` sends); paths on the "
        "server are not read"
    )
