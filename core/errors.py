"""Errors meant for the person calling the model.

A `UserError` names what was wrong (the file, the input, the value) and what is allowed. The Cog
adapters let it surface as the prediction's error; anything else is a bug in this project.
"""


class UserError(ValueError):
    """Bad input: the message is the whole story, no traceback needed."""


class WeightsMissingError(UserError):
    """Weights a code path needs are not on disk (a template without weights, no base model)."""


class RunFailedError(RuntimeError):
    """A failure that is not the caller's: its cause and the last log lines, for the report."""


def with_cause(error: Exception, log_tail: str) -> Exception:
    """The exception a failed prediction should report.

    A `UserError` already tells the whole story. Anything else is reported with its type,
    its message and the last log lines, because coglet returns failed predictions with empty
    logs and an error that is only a message.
    """
    if isinstance(error, UserError):
        return error
    text = f"{type(error).__name__}: {error}"
    if log_tail:
        text += f"\nlast log lines:\n{log_tail}"
    return RunFailedError(text)
