"""spiketalk - Python bindings over libspiketalk.so (cffi, ABI mode) with
numpy arrays in and out, and pipeline stages written in Python.

    spiketalk.Net, NetBuilder, Neurons    the SNN engine (spiketalk.snn)
    spiketalk.Recognizer                  the word recognizer (spiketalk.asr)
    spiketalk.LanguageModel               the language model and dialogue (spiketalk.lm)
    spiketalk.Synthesizer                 the synthesizer (spiketalk.tts)
    spiketalk.stage.Stage, spiketalk.wire a stage that speaks docs/PROTOCOL.md
    spiketalk.SpikeTalkError and subclasses: errors from C, with its message

Names are imported on first use (PEP 562), so `import spiketalk.wire` or
`spiketalk.stage` needs neither the C library nor cffi.
"""
from .errors import (SpikeTalkError, NoMemoryError, InvalidError, IOError, FormatError,  # noqa: F401
                     NotFoundError, DeviceError, UnsupportedError, StateError, TimeoutError,
                     EndError, InternalError)

__version__ = "0.1.0"

__all__ = ["SpikeTalkError", "NoMemoryError", "InvalidError", "IOError", "FormatError",
           "NotFoundError", "DeviceError", "UnsupportedError", "StateError", "TimeoutError",
           "EndError", "InternalError", "library_path", "Net", "NetBuilder", "Neurons", "State",
           "Recognizer", "Word", "read_audio", "resample", "LanguageModel", "LMState", "Cancel",
           "Generation", "Reply", "Synthesizer", "Synthesis", "TTSWord"]

_LAZY = {
    "Net": "snn", "NetBuilder": "snn", "Neurons": "snn", "State": "snn",
    "Recognizer": "asr", "Word": "asr", "read_audio": "asr", "resample": "asr",
    "LanguageModel": "lm", "LMState": "lm", "Cancel": "lm", "Generation": "lm", "Reply": "lm",
    "Synthesizer": "tts", "Synthesis": "tts", "TTSWord": "tts",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError("module 'spiketalk' has no attribute %r" % name)
    import importlib
    value = getattr(importlib.import_module("." + mod, __name__), name)
    globals()[name] = value
    return value


def library_path():
    """The libspiketalk.so in use (opening it if needed)."""
    from . import _lib
    return _lib.path()
