"""spiketalk.asr - the word recognizer (snn/asr.h) over the front end's log-mel
frames (audio/audio.h), on a numpy array or an audio file: words with their
times, as `spiketalk listen` prints them, plus clip classification and the
features themselves.

Workload: clips of a second to a few minutes at 16 kHz; the front end runs
in one C call over the whole array, then one st_asr_stream_push per 10 ms
frame (the recognizer's own ten network steps a frame run in C).
"""
import os
from collections import namedtuple

import numpy as np

from . import _lib, _np, errors

RATE_HZ = 16000  # the pipeline's rate (ST_PIPELINE_RATE_HZ)
QUALITIES = {"fastest": 0, "medium": 1, "best": 2}
POOLS = {"max": 0, "mean": 1, "ctc": 2}

Word = namedtuple("Word", "text start_s end_s decided_s score cls")
Word.__doc__ = """A decided word: its text, start and end (seconds from the
start of the audio, the recognizer's estimate), when it was decided, its
peak probability, and its class index."""


def read_audio(path):
    """Reads an audio file (WAV, FLAC, Ogg: libsndfile) mixed down to mono:
    (float32 samples, sample rate)."""
    ffi, lib = _lib.get()
    a = ffi.new("st_audio *")
    lib.st_error_clear()
    _lib.check(lib.st_audio_read(_lib.cstr(os.fspath(path), "audio path"), a))
    try:
        return _np.copy_f32(a.samples, a.frames), a.sample_rate_hz
    finally:
        lib.st_audio_free(a)


def write_wav(path, samples, rate_hz, float32=False):
    """Writes mono samples to a WAV file (16-bit PCM, or float32)."""
    _, lib = _lib.get()
    x = _np.f32(samples, "write_wav: samples", ndim=1)
    lib.st_error_clear()
    _lib.check(lib.st_audio_write_wav(_lib.cstr(os.fspath(path), "path"), _np.ptr(x), x.size,
                                      int(rate_hz), 1 if float32 else 0))


def resample(samples, in_rate_hz, out_rate_hz=RATE_HZ, quality="best"):
    """The whole array through libsamplerate (st_resampler), tail flushed."""
    ffi, lib = _lib.get()
    x = _np.f32(samples, "resample: samples", ndim=1)
    if in_rate_hz == out_rate_hz:
        return x.copy()
    if quality not in QUALITIES:
        raise errors.InvalidError("resample: quality '%s' (fastest, medium, best)" % quality,
                                  errors.INVALID)
    r = _lib.new(lib.st_resampler_new, int(in_rate_hz), int(out_rate_hz), QUALITIES[quality])
    try:
        cap = lib.st_resampler_max_output(r, x.size) + 4096
        y = np.empty(cap, dtype=np.float32)
        used, made = ffi.new("size_t *"), ffi.new("size_t *")
        _lib.check(lib.st_resampler_process(r, _np.ptr(x), x.size, _np.ptr(y), cap, used, made))
        total = made[0]
        while total < cap:
            _lib.check(lib.st_resampler_flush(r, _np.ptr(y) + total, cap - total, made))
            if made[0] == 0:
                break
            total += made[0]
        return y[:total].copy()
    finally:
        _lib.destroy(lib.st_resampler_destroy, r)


def _default_model():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.path.join("models", "asr.stm"),
              os.path.join(here, "..", "..", "..", "models", "asr.stm")):
        if os.path.exists(p):
            return os.path.normpath(p)
    return os.path.join("models", "asr.stm")


class Recognizer:
    """A loaded recognizer model (read-only, shareable) and its front end.

        asr = Recognizer.load("models/asr.stm")
        for w in asr.listen("speech.wav"):
            print(w.start_s, w.end_s, w.text)
    """

    def __init__(self, ptr, path):
        ffi, lib = _lib.get()
        self._ptr = ptr
        self.path = path
        self.words = [ffi.string(lib.st_asr_word(ptr, k)).decode()
                      for k in range(lib.st_asr_classes(ptr))]
        self.n_features = lib.st_asr_features(ptr)
        fi = lib.st_asr_frontend(ptr)
        fp = ffi.new("st_frontend_params *", lib.st_frontend_default_params())
        fp.n_mels, fp.hop_ms, fp.window_ms = fi.n_mels, fi.hop_ms, fi.window_ms
        try:
            self._fe = _lib.new(lib.st_frontend_new, fp)
        except errors.SpikeTalkError:
            _lib.destroy(lib.st_asr_destroy, ptr)
            self._ptr = None
            raise
        self.hop_samples = lib.st_frontend_hop_samples(self._fe)
        self.pool = {v: k for k, v in POOLS.items()}.get(lib.st_asr_default_pool(ptr), "max")
        self.n_params = lib.st_asr_param_count(ptr)

    @classmethod
    def load(cls, path=None):
        """Loads a recognizer file (kind "asr"); default models/asr.stm (the
        word classifier; models/asr_stream.stm is the streaming one)."""
        _, lib = _lib.get()
        path = os.fspath(path) if path is not None else _default_model()
        return cls(_lib.new(lib.st_asr_load, _lib.cstr(path, "model path")), path)

    def _alive(self):
        if self._ptr is None:
            raise errors.StateError("Recognizer %s: used after close()" % self.path, errors.STATE)
        return self._ptr

    def _audio16k(self, audio, rate_hz):
        if isinstance(audio, (str, bytes, os.PathLike)):
            x, rate = read_audio(audio)
        else:
            x, rate = _np.f32(audio, "audio", ndim=1), rate_hz
        return resample(x, rate, RATE_HZ) if rate != RATE_HZ else x

    def features(self, audio, rate_hz=RATE_HZ):
        """Log-mel frames of audio (an array at rate_hz, or a file):
        (frames [N, n_mels] float32, stamps [N] uint64: each frame's newest
        sample index at 16 kHz)."""
        ffi, lib = _lib.get()
        self._alive()
        x = self._audio16k(audio, rate_hz)
        lib.st_frontend_reset(self._fe, 0)
        cap = lib.st_frontend_max_frames(self._fe, x.size)
        feat = np.empty((cap, self.n_features), dtype=np.float32)
        stamps = np.empty(cap, dtype=np.uint64)
        used, made = ffi.new("size_t *"), ffi.new("size_t *")
        if x.size:
            _lib.check(lib.st_frontend_process(self._fe, _np.ptr(x), x.size, _np.ptr(feat),
                                               _np.ptr(stamps, "uint64_t *"), cap, used, made))
        return feat[:made[0]].copy(), stamps[:made[0]].copy()

    def classify(self, frames, pool=None):
        """A clip's frames [N, n_mels] from a fresh state: (word, scores per
        class). pool: "max", "mean" or "ctc" (default: what the model was trained with)."""
        _, lib = _lib.get()
        f = _np.f32(frames, "classify: frames", ndim=2, last=self.n_features)
        if f.shape[0] == 0:
            raise errors.InvalidError("classify: no frames", errors.INVALID)
        pool = pool or self.pool
        if pool not in POOLS:
            raise errors.InvalidError("classify: pool '%s' (max, mean, ctc)" % pool, errors.INVALID)
        scores = np.empty(len(self.words), dtype=np.float32)
        lib.st_error_clear()
        k = _lib.check(lib.st_asr_classify(self._alive(), _np.ptr(f), f.shape[0], POOLS[pool],
                                           _np.ptr(scores)))
        return self.words[k], scores

    @property
    def lm(self):
        """The word bigram's beam-search settings a ctc model carries (a dict:
        alpha, beta, margin, beam; snn/asr.h), or None when it has none."""
        ffi, lib = _lib.get()
        p = ffi.new("st_asr_lm_params *")
        if lib.st_asr_lm(self._alive(), p) == ffi.NULL:
            return None
        return {"alpha": p.alpha, "beta": p.beta, "margin": p.margin, "beam": p.beam}

    def listen(self, audio, rate_hz=RATE_HZ, params=None, keep_unknown=False, lm=None):
        """Streaming recognition over audio (an array at rate_hz, or a file):
        the decided words, as `spiketalk listen` prints them. params: decider
        settings to override (on_threshold, off_threshold, min_frames,
        max_frames, refractory_frames, emit_early) over the model's stored
        rule (or the defaults when it stores none). lm: a ctc model's
        decoder: None the model's own (its beam search when it carries a
        bigram), False the decision rule, or a dict of beam-search settings
        (alpha, beta, margin, beam) over the model's (`spiketalk listen --lm
        off`, `--alpha` ...). What the beam search still weighs is decided at
        the end of the audio (`spiketalk listen --flush end`; the CLI and the
        agent also decide at each offset of the spiking VAD)."""
        ffi, lib = _lib.get()
        feat, stamps = self.features(audio, rate_hz)
        # the model's own decision rule when its file stores one (snn/asr.h)
        p = ffi.new("st_asr_decider_params *", lib.st_asr_stream_params(self._alive(), ffi.NULL))
        for k, v in (params or {}).items():
            if not hasattr(p, k):
                raise errors.InvalidError("listen: no decider parameter '%s'" % k, errors.INVALID)
            setattr(p, k, v)
        s = _lib.new(lib.st_asr_stream_new, self._alive(), p)
        if lm is not None:
            q = ffi.NULL
            if lm is not False:
                q = ffi.new("st_asr_lm_params *", lib.st_asr_lm_default_params())
                cur = self.lm
                for k, v in list((cur or {}).items()) + list(dict(lm).items()):
                    if not hasattr(q, k):
                        _lib.destroy(lib.st_asr_stream_destroy, s)
                        raise errors.InvalidError("listen: no beam-search setting '%s'" % k,
                                                  errors.INVALID)
                    setattr(q, k, v)
            lib.st_error_clear()
            rc = lib.st_asr_stream_set_lm(s, q)
            if rc:
                _lib.destroy(lib.st_asr_stream_destroy, s)
                _lib.check(rc)
        out = []
        ev = ffi.new("st_asr_event *")

        def take():
            if ev.word == 1 and not keep_unknown:
                return
            out.append(Word(self.words[ev.word], ev.start_stamp / RATE_HZ,
                            ev.end_stamp / RATE_HZ, ev.decided_stamp / RATE_HZ, ev.score,
                            ev.word))
        try:
            base = _np.ptr(feat)
            nf = self.n_features
            push = lib.st_asr_stream_push
            for j in range(feat.shape[0]):
                if push(s, base + j * nf, int(stamps[j]), ev, ffi.NULL) == 1:
                    take()
            while lib.st_asr_stream_flush(s, ev) == 1:
                take()
        finally:
            _lib.destroy(lib.st_asr_stream_destroy, s)
        return out

    def close(self):
        if self._ptr is not None:
            _, lib = _lib.get()
            _lib.destroy(lib.st_frontend_destroy, self._fe)
            _lib.destroy(lib.st_asr_destroy, self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
