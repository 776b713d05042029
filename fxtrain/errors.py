"""Domain errors: the CLI turns each into one line on stderr and exit code 1."""


class FxtrainError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class DataError(FxtrainError):
    """Input data that cannot be used: missing, empty, ragged, non-numeric, NaN or bad labels."""


class ConfigError(FxtrainError):
    """Settings that do not make sense: arch, bits, learning rate, epochs, batch, resume."""


class TargetError(FxtrainError):
    """A hardware profile that is unknown or malformed, or a run that does not fit it."""


class ToolchainError(FxtrainError):
    """A compiler or emulator that is missing or failed."""


class OutputError(FxtrainError):
    """An output path that cannot be written: under a plain file, read-only, or not a folder."""


class MissingExtraError(FxtrainError):
    """An optional dependency is not installed; the message names the pip command."""


class InputError(FxtrainError):
    """An input path that is not a regular file, exceeds its size limit, or cannot be read."""


class ModelError(FxtrainError):
    """A pre-trained model fxtrain cannot import: not a model file, or an op, attribute or shape the engine lacks."""
