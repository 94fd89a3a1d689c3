"""spiketalk.tts - the synthesizer (tts/tts.h: espeak-ng or flite) from
Python: text to a numpy array with the time of each word, and the streaming
interface (push text as it is written, read audio in chunks, cancel).

st_tts_synthesize and st_tts_read run in C without the GIL (cffi releases
it), so a reader thread in Python does not stall the rest of the program.
"""
from collections import namedtuple

import numpy as np

from . import _lib, _np, errors

QUALITIES = {"fastest": 0, "medium": 1, "best": 2}

TTSWord = namedtuple("TTSWord", "text index start_s end_s start end utterance")
TTSWord.__doc__ = """A word's sound in the output: its text (as written),
index among the utterance's words, start and end in seconds and in frames
(at the synthesizer's rate, within the utterance), and the utterance id."""

Synthesis = namedtuple("Synthesis", "audio rate_hz words")
Synthesis.__doc__ = """A whole utterance: float32 mono samples, their rate,
and the words (TTSWord) with their times."""


class Synthesizer:
    """A synthesizer stage (st_tts) with its worker thread.

        with Synthesizer(engine="espeak", sample_rate_hz=16000) as tts:
            audio, rate, words = tts.synthesize("hello world")
    """

    def __init__(self, engine="espeak", voice=None, rate_wpm=0, pitch=50, sample_rate_hz=0,
                 chunk_ms=10.0, quality="medium", normalize=True, **more):
        ffi, lib = _lib.get()
        p = ffi.new("st_tts_params *", lib.st_tts_default_params())
        keep = []  # the strings p points to, alive until st_tts_new has copied them
        eng = ffi.new("char[]", _lib.cstr(engine, "engine"))
        keep.append(eng)
        p.engine = eng
        if voice is not None:
            v = ffi.new("char[]", _lib.cstr(voice, "voice"))
            keep.append(v)
            p.voice = v
        if quality not in QUALITIES:
            raise errors.InvalidError("Synthesizer: quality '%s' (fastest, medium, best)" % quality,
                                      errors.INVALID)
        try:
            p.rate_wpm, p.pitch, p.sample_rate_hz = rate_wpm, pitch, sample_rate_hz
            p.chunk_ms, p.quality, p.normalize = chunk_ms, QUALITIES[quality], bool(normalize)
            for k, v in more.items():
                if k in ("engine", "voice") or not hasattr(p, k):
                    raise errors.InvalidError("Synthesizer: no parameter '%s'" % k, errors.INVALID)
                setattr(p, k, v)
        except (OverflowError, TypeError) as e:
            raise errors.InvalidError("Synthesizer: %s" % e, errors.INVALID)
        self._ptr = _lib.new(lib.st_tts_new, p)
        self.rate_hz = lib.st_tts_sample_rate_hz(self._ptr)
        self.engine = ffi.string(lib.st_tts_engine(self._ptr)).decode()
        self.voice = ffi.string(lib.st_tts_voice(self._ptr)).decode()
        self._chunk = lib.st_tts_chunk_frames(self._ptr)

    def _alive(self):
        if self._ptr is None:
            raise errors.StateError("Synthesizer: used after close()", errors.STATE)
        return self._ptr

    def _word(self, w):
        ffi, _ = _lib.get()
        return TTSWord(ffi.string(w.text).decode("utf-8", "replace"), w.index,
                       w.start / self.rate_hz, w.end / self.rate_hz, w.start, w.end, w.utterance)

    def synthesize(self, text, seed_key=None):
        """One whole utterance on an idle synthesizer: Synthesis(audio, rate_hz, words).

        seed_key (a string naming the voice and its settings): libc's rand(),
        from which flite's clustergen voices (awb, rms, slt) draw their noise,
        is first seeded from a hash of seed_key and text
        (st_tts_seed_draws), so the same text with the same key gives the
        same samples whatever was synthesized before: what training data
        needs to be rebuilt bit for bit. It sets the process's rand() state."""
        ffi, lib = _lib.get()
        r = ffi.new("st_tts_result *")
        lib.st_error_clear()
        ctext = _lib.cstr(text, "synthesize: text")
        if seed_key is not None:
            lib.st_tts_seed_draws(_lib.cstr(seed_key, "synthesize: seed_key"), ctext)
        _lib.check(lib.st_tts_synthesize(self._alive(), ctext, r))
        try:
            audio = _np.copy_f32(r.samples, r.frames)
            words = [self._word(r.words[k]) for k in range(r.n_words)]
            return Synthesis(audio, r.sample_rate_hz, words)
        finally:
            lib.st_tts_result_free(r)

    # ---- streaming ----

    def push(self, text):
        """Appends text (a token, a word, a sentence) to the open utterance;
        returns its id."""
        _, lib = _lib.get()
        lib.st_error_clear()
        return _lib.check(lib.st_tts_push(self._alive(), _lib.cstr(text, "push: text")))

    def end(self):
        """Ends the open utterance; returns its id."""
        _, lib = _lib.get()
        return _lib.check(lib.st_tts_end(self._alive()))

    def say(self, text):
        """push(text) then end(): one whole utterance; returns its id."""
        _, lib = _lib.get()
        lib.st_error_clear()
        return _lib.check(lib.st_tts_say(self._alive(), _lib.cstr(text, "say: text")))

    def cancel(self):
        """Drops everything queued and stops the engine (any thread)."""
        _lib.get()[1].st_tts_cancel(self._alive())

    def read(self, timeout_s=1.0):
        """The next chunk of audio (at most chunk_ms): (samples, utterance,
        position, end), or None when nothing came within timeout_s."""
        ffi, lib = _lib.get()
        out = np.empty(self._chunk, dtype=np.float32)
        info = ffi.new("st_tts_chunk *")
        n = lib.st_tts_read(self._alive(), _np.ptr(out), out.size, float(timeout_s), info)
        if n == errors.TIMEOUT:
            return None
        _lib.check(n)
        return out[:n].copy(), info.utterance, info.position, bool(info.end)

    def read_words(self, max_words=256):
        """Word events queued so far (TTSWord), in order; never waits."""
        ffi, lib = _lib.get()
        buf = ffi.new("st_tts_word[]", max_words)
        n = lib.st_tts_read_words(self._alive(), buf, max_words)
        return [self._word(buf[k]) for k in range(n)]

    def read_utterance(self, timeout_s=10.0):
        """Reads chunks until an utterance's end: (audio, utterance id)."""
        parts, utt = [], None
        while True:
            c = self.read(timeout_s)
            if c is None:
                raise errors.TimeoutError("Synthesizer.read_utterance: no audio for %g s"
                                          % timeout_s, errors.TIMEOUT)
            parts.append(c[0])
            utt = c[1]
            if c[3]:
                break
        return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), utt

    def close(self):
        if self._ptr is not None:
            _lib.destroy(_lib.get()[1].st_tts_destroy, self._ptr)
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
