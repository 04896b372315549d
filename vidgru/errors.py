"""Typed errors. Each carries one line that names the problem and the fix; the CLI prints it as is."""

from __future__ import annotations


class VidgruError(Exception):
    """Base class: ``str(err)`` is the one-line message a user sees."""

    exit_code = 1


class ConfigError(VidgruError):
    """A config file or a key in it is wrong."""

    exit_code = 2


class InputError(VidgruError):
    """A path given on the command line cannot be used."""

    exit_code = 3


class SourceNotFoundError(InputError):
    pass


class EmptyFolderError(InputError):
    pass


class VideoOpenError(InputError):
    """The file exists but OpenCV cannot read a single frame from it."""


class PartialDecodeError(InputError):
    """Decoding stopped early. Everything before the break was processed and written."""

    exit_code = 4


class WeightsNotFoundError(VidgruError):
    exit_code = 5


class ModelError(VidgruError):
    """A model directory is missing, incomplete or unreadable."""

    exit_code = 6


class ModelVersionError(ModelError):
    """A model directory was written by an incompatible version of vidgru."""


class TrainingError(VidgruError):
    """There is not enough usable normal footage to fit a model."""

    exit_code = 7


class DeliveryError(VidgruError):
    """A configured event sink cannot be used at start: bad settings, a missing secret, or unreachable."""

    exit_code = 9


class OutboxError(DeliveryError):
    """The local outbox that holds events until every sink has them cannot be opened or written."""


class StreamOpenError(VidgruError):
    """A camera's stream cannot be opened. ``vidgru watch`` reports the camera offline and keeps retrying."""


class ResumeError(VidgruError):
    """The outputs hold an earlier run's results that this run cannot continue (other model, settings or
    input files)."""

    exit_code = 10
