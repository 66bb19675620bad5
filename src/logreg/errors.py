"""The errors a user can fix. Each message names the file, line, column or config key, what was expected, what to do.

Entry scripts print these as one line, without a traceback; anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Base of every error the user can act on."""


class DataError(UserError):
    """A data file or data option that cannot be used: missing, malformed, or not the expected file."""


class ConfigError(UserError):
    """A config value that cannot work: out of range, unknown name, or asking for hardware that is not there."""


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite during training."""


def find_user_error(error: BaseException | None) -> UserError | None:
    """The UserError behind `error`, following `raise ... from` causes (Hydra's instantiate wraps errors that way)."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__
    return error
