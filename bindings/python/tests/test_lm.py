"""bindings/python/tests/test_lm.py - the language model from Python: the
same tokens as `spiketalk lm generate` and the same answer as `spiketalk
reply`, the reference's logits, callbacks that stop and raise, cancel from
another thread, state forks, tools, and errors on bad models and tokens."""
import os
import threading

import numpy as np
import pytest

from conftest import run_cli, shared

import spiketalk
from spiketalk import lm as lmmod


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small random model with an ASCII tokenizer (vocab 96), saved."""
    path = tmp_path_factory.mktemp("lm") / "r.stnn"
    m = spiketalk.LanguageModel.random(n_layer=2, n_embd=32, vocab=96, seed=5)
    m.save(path)
    m.close()
    return str(path)


def test_generate_matches_cli(model_file):
    with spiketalk.LanguageModel.load(model_file) as m:
        assert (m.n_layer, m.n_embd, m.vocab, m.spiking) == (2, 32, 96, True)
        g = m.generate("user: hi", max_tokens=40)
        assert g.stop == "length" and len(g.tokens) == 40 and g.n_prompt == 8
        out = run_cli("lm", "generate", "--model", model_file, "--prompt", "user: hi", "--greedy",
                      "--max-tokens", 40)
        assert out == "user: hi" + g.text + "\n"
        # the dense twin is another model: other tokens
        with m.twin(spiking=False) as d:
            assert not d.spiking
            out = run_cli("lm", "generate", "--model", model_file, "--prompt", "user: hi",
                          "--greedy", "--max-tokens", 40, "--dense")
            assert out == "user: hi" + d.generate("user: hi", max_tokens=40).text + "\n"


def test_reply_matches_cli(model_file):
    with spiketalk.LanguageModel.load(model_file) as m:
        for text in ("what time is it", "what is seven times six"):
            r = m.reply(text, hour=15, minute=5)
            out = run_cli("reply", text, "--model", model_file, "--time", "15:05")
            assert out == r.text + "\n"
            assert r.text and r.n_tokens > 0
    assert lmmod.tool("calc seven times six") == "forty two"
    assert lmmod.tool("time", hour=15, minute=5) == "three oh five pm"
    assert lmmod.normalize("What's 7 + 5?") == "what's seven plus five"
    with pytest.raises(spiketalk.InvalidError):
        lmmod.tool("calc seven banana six")


def test_reference_logits():
    d = shared("spikegpt", "golden_L2_D32")
    with spiketalk.LanguageModel.load(os.path.join(d, "model.bin")) as m:
        toks = np.fromfile(os.path.join(d, "tokens.i32"), dtype=np.int32)
        ref = np.fromfile(os.path.join(d, "logits.f32"), dtype=np.float32).reshape(len(toks), -1)
        s = m.new_state()
        got = s.feed(toks, all_logits=True)
        assert got.shape == ref.shape
        # PyTorch's float32 sums against ours: `spiketalk lm golden`'s bound
        assert np.abs(got - ref).max() < 1e-4
        # the parallel mode is bit-identical to one token at a time
        s2 = m.new_state()
        one = np.stack([s2.step(t) for t in toks])
        np.testing.assert_array_equal(one, got)
        np.testing.assert_array_equal(s.data(), s2.data())
        assert s.tokens == len(toks)


def test_callback_cancel_and_fork():
    m = spiketalk.LanguageModel.random(n_layer=1, n_embd=16, vocab=96, seed=2)
    seen = []
    g = m.generate("abc", max_tokens=30, on_token=lambda t, p: seen.append((t, p)) or len(seen) == 5)
    assert g.stop == "callback" and len(g.tokens) == 5
    assert [t for t, _ in seen] == list(g.tokens) and "".join(p for _, p in seen) == g.text
    # greedy generation is argmax of the logits, token after token
    s = m.new_state()
    logits = s.feed("abc")
    want = []
    for _ in range(5):
        t = int(np.argmax(logits))
        want.append(t)
        logits = s.step(t)
    assert want == list(g.tokens)
    # a fork continues like the original
    a = m.new_state()
    a.feed("hello")
    b = a.fork()
    np.testing.assert_array_equal(a.step(3), b.step(3))
    # cancel from another thread: the generation stops between tokens
    c = spiketalk.Cancel()
    started = threading.Event()

    def slow(t, p):
        started.set()
        threading.Event().wait(0.002)
    th = threading.Thread(target=lambda: (started.wait(5), c.set()))
    th.start()
    g = m.generate("abc", max_tokens=100000, on_token=slow, cancel=c)
    th.join()
    assert g.stop == "cancel" and 0 < len(g.tokens) < 100000
    # an exception in the callback stops the generation and reaches the caller
    with pytest.raises(ZeroDivisionError):
        m.generate("abc", max_tokens=10, on_token=lambda t, p: 1 / 0)
    # stop token
    g = m.generate("abc", max_tokens=50, stop_token=int(want[1]))
    assert g.stop == "token" and g.tokens[-1] == want[1]
    m.close()
    with pytest.raises(spiketalk.StateError):
        a.step(1)


def test_bad_input(tmp_path, model_file):
    with pytest.raises(spiketalk.SpikeTalkError) as e:
        spiketalk.LanguageModel.load(tmp_path / "none.stnn")
    assert "none.stnn" in str(e.value)
    data = bytearray(open(model_file, "rb").read())
    data[len(data) // 3] ^= 0x20
    (tmp_path / "bad.stnn").write_bytes(bytes(data))
    with pytest.raises(spiketalk.FormatError) as e:
        spiketalk.LanguageModel.load(tmp_path / "bad.stnn")
    assert "bad.stnn" in str(e.value)
    (tmp_path / "junk.bin").write_bytes(b"SPGT" + b"\x01" * 20)
    with pytest.raises(spiketalk.FormatError):
        spiketalk.LanguageModel.load(tmp_path / "junk.bin")
    with pytest.raises(spiketalk.InvalidError):
        spiketalk.LanguageModel.random(n_layer=0)
    m = spiketalk.LanguageModel.load(model_file)
    s = m.new_state()
    with pytest.raises(spiketalk.InvalidError):
        s.feed([1, 2, 96])                 # vocab 96: 0..95
    with pytest.raises(spiketalk.InvalidError):
        s.feed(np.array([1.5, 2.0]))       # not token ids
    with pytest.raises(spiketalk.InvalidError):
        s.feed(np.zeros((2, 2), np.int32))
    with pytest.raises(spiketalk.InvalidError):
        s.step(-1)
    with pytest.raises(spiketalk.InvalidError):
        m.generate("abc", max_tokens=0)
    with pytest.raises(spiketalk.InvalidError):
        m.generate([500], max_tokens=3)
    with pytest.raises(spiketalk.InvalidError):
        m.generate("abc", greedy=False, top_k=-1)
    with pytest.raises(spiketalk.InvalidError) as e:
        m.generate("abc", greedy=False, top_p=0)       # the C sampler checks the range
    assert "top_p" in str(e.value)
    other = spiketalk.LanguageModel.random(n_layer=1, n_embd=16, vocab=96)
    with pytest.raises(spiketalk.InvalidError):
        m.generate("abc", state=other.new_state())
