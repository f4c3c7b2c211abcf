"""The error classes of mixnn. Every failure a user can cause is one of these."""


class MixnnError(Exception):
    """Base class of every error mixnn raises on purpose."""


class ModelFormatError(MixnnError):
    """A model file is truncated, corrupt, of an unknown version, or not a model at all."""


class UnsupportedOpError(MixnnError):
    """An op (or an op version, or an attribute value) that mixnn does not implement."""


class ShapeError(MixnnError):
    """Shapes that do not fit together: found while inferring shapes at resize."""


class InputError(MixnnError):
    """A feed that does not match the model: unknown name, wrong dtype, rank or static dim."""


class BackendUnavailable(MixnnError):
    """A backend whose binding or driver is missing, or a device index out of range."""


class KernelCompileError(MixnnError):
    """A GPU kernel or shader failed to build; the message carries the driver's build log."""

    def __init__(self, message, build_log=""):
        super().__init__(message + (f"\n--- build log ---\n{build_log}" if build_log else ""))
        self.build_log = build_log
