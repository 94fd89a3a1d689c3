"""spiketalk._np - numpy arrays to and from C buffers, with the checks that
turn a wrong shape or dtype into spiketalk.InvalidError before C sees it.

Only real numbers go in: float32 arrays are used in place when C-contiguous,
other float, integer and boolean arrays are converted to float32 (spikes as
0/1); anything else (complex, object, strings) is refused.
"""
import numpy as np

from . import _lib, errors


def _invalid(msg):
    return errors.InvalidError(msg, errors.INVALID)


def f32(x, what, ndim=None, last=None, length=None):
    """x as a C-contiguous float32 array. ndim: the dimensions it must have
    (a tuple allows several); last: the size its last axis must have; length:
    the number of elements it must have."""
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise _invalid("%s: not an array of numbers (%s)" % (what, e))
    if a.dtype.kind not in "fiub":
        raise _invalid("%s: dtype %s; expected real numbers (float32 preferred)" % (what, a.dtype))
    if ndim is not None:
        allowed = ndim if isinstance(ndim, tuple) else (ndim,)
        if a.ndim not in allowed:
            raise _invalid("%s: %d dimension(s) (shape %s); expected %s" % (
                what, a.ndim, a.shape, " or ".join(str(d) for d in allowed)))
    if last is not None and (a.ndim == 0 or a.shape[-1] != last):
        raise _invalid("%s: shape %s; its last axis must be %d long" % (what, a.shape, last))
    if length is not None and a.size != length:
        raise _invalid("%s: %d values; expected %d" % (what, a.size, length))
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise _invalid("%s: holds NaN or infinity" % what)
    return a


def ptr(a, ctype="float *"):
    """A C pointer into numpy array a (which the caller keeps alive)."""
    ffi, _ = _lib.get()
    return ffi.cast(ctype, ffi.from_buffer(a))


def copy_f32(p, n):
    """n floats at C pointer p -> a new numpy array."""
    ffi, _ = _lib.get()
    out = np.empty(n, dtype=np.float32)
    if n:
        ffi.memmove(ffi.from_buffer(out), p, n * 4)
    return out
