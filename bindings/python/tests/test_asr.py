"""bindings/python/tests/test_asr.py - the recognizer from Python: words with
times on a file and on an array, the same as `spiketalk listen` prints;
clip classification, features, and errors on bad models and arrays."""
import os
import re

import numpy as np
import pytest

from conftest import REPO, SHARED, run_cli

import spiketalk

MODEL = os.path.join(REPO, "models", "asr.stm")


@pytest.fixture(scope="module")
def asr():
    if not os.path.exists(MODEL):
        pytest.skip("SKIPPED: models/asr.stm is absent")
    with spiketalk.Recognizer.load(MODEL) as a:
        yield a


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Several words, 0.4 s apart: the shared data's clips when present, else
    espeak-ng's voice."""
    out = tmp_path_factory.mktemp("asr") / "speech.wav"
    clips = [os.path.join(SHARED, "speech", "clips", "cards_%03d.flac" % k) for k in range(1, 6)]
    gap = np.zeros(6400, np.float32)
    if all(os.path.exists(c) for c in clips):
        parts = []
        for c in clips:
            x, rate = spiketalk.read_audio(c)
            parts += [spiketalk.resample(x, rate, 16000), gap]
        audio, rate = np.concatenate(parts), 16000
    else:
        with spiketalk.Synthesizer(sample_rate_hz=16000) as tts:
            audio, rate, _ = tts.synthesize("stop. go. yes. no.")
    spiketalk.asr.write_wav(out, audio, rate, float32=True)
    return str(out)


LINE = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\S+)\s+\(decided at (?:([\d.]+) s|end of input)")


def cli_words(path):
    out = run_cli("listen", path, "--model", MODEL)
    words = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            words.append((m.group(3), float(m.group(1)), float(m.group(2))))
    return words


def test_listen_matches_cli(asr, speech):
    got = asr.listen(speech)
    assert [(w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in got] == cli_words(speech)
    assert all(w.text in asr.words and 0 <= w.score <= 1 for w in got)
    # the same audio as an array at its own rate: the same words
    x, rate = spiketalk.read_audio(speech)
    assert asr.listen(x, rate_hz=rate) == got


def test_features_and_classify(asr, speech):
    feat, stamps = asr.features(speech)
    assert feat.shape[1] == asr.n_features and feat.dtype == np.float32
    assert np.all(np.diff(stamps.astype(np.int64)) == asr.hop_samples)
    word, scores = asr.classify(feat[:100])
    assert word in asr.words and scores.shape == (len(asr.words),)
    assert asr.words[int(np.argmax(scores))] == word
    w2, s2 = asr.classify(feat[:100], pool="max")
    assert s2.shape == scores.shape
    assert asr.words[0] == "_silence_" and asr.words[1] == "_unknown_"


def test_bad_input(asr, tmp_path):
    with pytest.raises(spiketalk.NotFoundError):
        spiketalk.Recognizer.load(tmp_path / "none.stm")
    data = bytearray(open(MODEL, "rb").read())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.stm").write_bytes(bytes(data))
    with pytest.raises(spiketalk.FormatError) as e:
        spiketalk.Recognizer.load(tmp_path / "bad.stm")
    assert "bad.stm" in str(e.value)
    with pytest.raises(spiketalk.FormatError):          # a network file, not a recognizer
        spiketalk.Recognizer.load(os.path.join(REPO, "tests", "fixtures", "snn_tiny_v1.stm"))
    with pytest.raises(spiketalk.InvalidError):
        asr.classify(np.zeros((10, asr.n_features + 1), np.float32))
    with pytest.raises(spiketalk.InvalidError):
        asr.classify(np.zeros((0, asr.n_features), np.float32))
    with pytest.raises(spiketalk.InvalidError):
        asr.listen(np.zeros((2, 16000), np.float32))
    with pytest.raises(spiketalk.InvalidError):
        asr.classify(np.zeros((10, asr.n_features)), pool="median")
    with pytest.raises(spiketalk.NotFoundError):
        asr.listen(tmp_path / "none.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(spiketalk.FormatError):
        asr.listen(tmp_path / "text.wav")


STREAM = os.path.join(REPO, "models", "asr_stream.stm")


def test_stream_model_lm(speech):
    """The agent's recognizer carries a word bigram: listen decodes with its
    beam search as `spiketalk listen` does, lm=False with the decision rule
    as `listen --lm off`, and settings over the model's as `--beam` ..."""
    if not os.path.exists(STREAM):
        pytest.skip("SKIPPED: models/asr_stream.stm is absent")

    def cli(*opts):
        words = []
        for line in run_cli("listen", speech, "--model", STREAM, *opts).splitlines():
            m = LINE.match(line)
            if m:
                words.append((m.group(3), round(float(m.group(1)), 3), round(float(m.group(2)), 3)))
        return words

    def py(**kw):
        return [(w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in a.listen(speech, **kw)]

    with spiketalk.Recognizer.load(STREAM) as a:
        lm = a.lm
        assert lm is not None and lm["beam"] >= 1 and lm["alpha"] >= 0
        # (listen decides what the beam still weighs at the end of the audio:
        # the CLI's --flush end; by default the CLI decides at the VAD's offsets)
        assert py() == cli("--flush", "end")
        assert py(lm=False) == cli("--lm", "off")
        assert py(lm={"beam": 2, "beta": 0}) == cli("--beam", "2", "--beta", "0", "--flush", "end")
        with pytest.raises(spiketalk.InvalidError):
            a.listen(speech, lm={"width": 3})
        with pytest.raises(spiketalk.InvalidError):
            a.listen(speech, lm={"beam": 99})
