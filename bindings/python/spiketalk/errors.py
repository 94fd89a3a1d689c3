"""spiketalk.errors - the exception hierarchy: one class per st_err code of
base/base.h, each carrying the C library's message (st_errmsg()).

Pure Python: it touches neither libspiketalk nor the network, so the wire
protocol and stages can use it without the C library.
"""

OK = 0
NOMEM = -1
INVALID = -2
IO = -3
FORMAT = -4
NOT_FOUND = -5
DEVICE = -6
UNSUPPORTED = -7
STATE = -8
TIMEOUT = -9
END = -10
INTERNAL = -11


class SpikeTalkError(Exception):
    """Base of every error spiketalk raises. `code` is the st_err code
    (negative), `message` the detailed message (st_errmsg(), naming what was
    wrong and where)."""

    code = INTERNAL

    def __init__(self, message, code=None):
        Exception.__init__(self, message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self):
        return self.message


class NoMemoryError(SpikeTalkError, MemoryError):
    code = NOMEM


class InvalidError(SpikeTalkError, ValueError):
    """An argument or parameter out of range; also a wrong array shape or
    dtype handed to the bindings."""
    code = INVALID


class IOError(SpikeTalkError, OSError):  # noqa: A001 - the C code's name
    code = IO


class FormatError(SpikeTalkError, ValueError):
    """Input data (a model file, a message) is not in the expected format."""
    code = FORMAT


class NotFoundError(SpikeTalkError, LookupError):
    code = NOT_FOUND


class DeviceError(SpikeTalkError):
    code = DEVICE


class UnsupportedError(SpikeTalkError):
    code = UNSUPPORTED


class StateError(SpikeTalkError):
    code = STATE


class TimeoutError(SpikeTalkError):  # noqa: A001
    code = TIMEOUT


class EndError(SpikeTalkError):
    code = END


class InternalError(SpikeTalkError):
    code = INTERNAL


BY_CODE = {c.code: c for c in (NoMemoryError, InvalidError, IOError, FormatError,
                                NotFoundError, DeviceError, UnsupportedError, StateError,
                                TimeoutError, EndError, InternalError)}


def from_code(code, message):
    """The exception for st_err `code` with `message`."""
    cls = BY_CODE.get(code, SpikeTalkError)
    return cls(message, code)
