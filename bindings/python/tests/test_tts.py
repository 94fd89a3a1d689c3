"""bindings/python/tests/test_tts.py - the synthesizer from Python: text to an
array with word times, streaming chunks and word events, cancel, and errors
for a bad engine, voice or parameter."""
import numpy as np
import pytest

import spiketalk


def test_synthesize_words_and_times():
    with spiketalk.Synthesizer(sample_rate_hz=16000) as tts:
        assert tts.engine == "espeak" and tts.rate_hz == 16000
        s = tts.synthesize("hello world, it is 7:30")
        assert s.rate_hz == 16000 and s.audio.dtype == np.float32
        assert 0.8 < s.audio.size / s.rate_hz < 5
        assert [w.text for w in s.words] == ["hello", "world", "it", "is", "7:30"]
        assert [w.index for w in s.words] == list(range(5))
        for a, b in zip(s.words, s.words[1:]):
            assert a.start <= a.end <= b.start
        assert s.words[-1].end <= s.audio.size
        # each word's span holds sound
        for w in s.words:
            assert np.abs(s.audio[w.start:w.end]).max() > 0.01
        assert s.words[1].start_s == s.words[1].start / 16000


def test_seeded_synthesis():
    # flite's awb draws its noise from libc's rand(): with a seed_key a word
    # is the same after other syntheses; without, it is not
    with spiketalk.Synthesizer(engine="flite", voice="awb", sample_rate_hz=16000) as tts:
        first = tts.synthesize("seven", seed_key="flite/awb").audio
        tts.synthesize("six")
        again = tts.synthesize("seven", seed_key="flite/awb").audio
        unseeded = tts.synthesize("seven").audio
        assert np.array_equal(first, again)
        assert not np.array_equal(first, unseeded)
        with pytest.raises(spiketalk.InvalidError) as e:
            tts.synthesize("seven", seed_key=7)
        assert "seed_key" in str(e.value)


def test_streaming_and_cancel():
    with spiketalk.Synthesizer(sample_rate_hz=16000, chunk_ms=20) as tts:
        u = tts.push("one two")
        assert tts.push(" three") == u
        assert tts.end() == u
        audio, got = tts.read_utterance()
        assert got == u and audio.size > 8000
        words = tts.read_words()
        assert [w.text for w in words] == ["one", "two", "three"]
        assert all(w.utterance == u for w in words)
        # chunks are at most chunk_ms
        v = tts.say("a long sentence that will be cancelled before it is read")
        c = tts.read(5.0)
        assert c is not None and 0 < c[0].size <= 320 and c[1] == v
        tts.cancel()
        w = tts.say("after")
        audio, got = tts.read_utterance()
        assert got == w                      # nothing of the cancelled one comes back
    with spiketalk.Synthesizer(engine="flite", sample_rate_hz=16000) as f:
        s = f.synthesize("good morning")
        assert [w.text for w in s.words] == ["good", "morning"] and s.audio.size > 0


def test_bad_parameters():
    with pytest.raises(spiketalk.NotFoundError) as e:
        spiketalk.Synthesizer(engine="nope")
    assert "nope" in str(e.value)
    with pytest.raises(spiketalk.NotFoundError):
        spiketalk.Synthesizer(voice="xx-nonexistent")
    with pytest.raises(spiketalk.InvalidError) as e:
        spiketalk.Synthesizer(rate_wpm=5)
    assert "rate_wpm" in str(e.value)
    with pytest.raises(spiketalk.InvalidError):
        spiketalk.Synthesizer(no_such_param=1)
    with pytest.raises(spiketalk.InvalidError):
        spiketalk.Synthesizer(rate_wpm="fast")
    tts = spiketalk.Synthesizer()
    with pytest.raises(spiketalk.InvalidError):
        tts.say("nul\0byte")
    tts.close()
    with pytest.raises(spiketalk.StateError):
        tts.synthesize("closed")
