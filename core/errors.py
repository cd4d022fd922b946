"""Errors meant for the person calling the model.

A `UserError` names what was wrong (the file, the input, the value) and what is allowed. The Cog
adapters let it surface as the prediction's error; anything else is a bug in this project.
"""


class UserError(ValueError):
    """Bad input: the message is the whole story, no traceback needed."""


class WeightsMissingError(UserError):
    """Weights a code path needs are not on disk (a template without weights, no base model)."""
