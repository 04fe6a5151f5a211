"""Exceptions with messages that name the problem and the fix."""


class DDCMIError(Exception):
    """Base class of every error ddcmi raises on purpose."""


class UnknownNameError(DDCMIError, KeyError):
    """An unknown dataset, model, method or profile name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(DDCMIError, FileNotFoundError):
    """No copy of a dataset was found and none could be downloaded."""


class ArtefactError(DDCMIError, ValueError):
    """A saved file (synthetic set, checkpoint, proxy) is corrupt or belongs to another config."""


class ConfigError(DDCMIError, ValueError):
    """A configuration value is invalid (wrong type, IPC larger than a class, ...)."""


class NonFiniteLossError(DDCMIError, FloatingPointError):
    """A loss became NaN or infinite during distillation."""


class RunLockedError(DDCMIError, RuntimeError):
    """Another process is working in the same run folder."""


class KernelDiedError(DDCMIError, RuntimeError):
    """The kernel running a notebook (``ddcmi reproduce``) died: killed from outside or crashed."""


class RunnerError(DDCMIError, RuntimeError):
    """A runner (a local Ray, a cluster) could not start or be reached."""
