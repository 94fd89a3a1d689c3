"""spiketalk.lm - the spiking language model (snn/lm.h) and the agent's
dialogue on top of it (snn/dialogue.h): load a model, feed tokens, generate
with a Python callback per token and a cancel that works from any thread,
and reply() to one line of user text with the tools executed.

Generation runs in C (st_lm_generate, which releases the GIL through cffi);
the callback is called between tokens from the generating thread. A callback
that raises stops the generation, and the exception is re-raised by
generate() once C has returned.
"""
import os
import weakref
from collections import namedtuple

import numpy as np

from . import _lib, _np, errors

STOPS = ("length", "token", "callback", "cancel")

Generation = namedtuple("Generation", "text tokens stop n_prompt first_token_s total_s")
Generation.__doc__ = """What generate() made: the text and token ids it
generated, why it stopped ("length", "token", "callback", "cancel"), the
prompt's token count, and the seconds to the first token and in all."""

Reply = namedtuple("Reply", "text transcript n_tools tool_error timer_s fallback n_tokens seconds")
Reply.__doc__ = """The agent's answer (st_dialogue_reply): the reply text, the
whole transcript after "agent:" (model text and tool results), tool calls
made, whether one could not be read, the last timer set (seconds, -1:
none), whether the runtime's fallback answer was used, tokens written, and
the time it took."""


class Cancel:
    """A cancel flag st_lm_generate checks between tokens: set() it from any
    thread (or from the callback) to stop a generation."""

    def __init__(self):
        ffi, _ = _lib.get()
        self._flag = ffi.new("int *")

    def set(self):
        self._flag[0] = 1

    def clear(self):
        self._flag[0] = 0

    def is_set(self):
        return bool(self._flag[0])


class LanguageModel:
    """A loaded language model: weights, tokenizer (immutable, shareable).

        lm = LanguageModel.load("models/dialogue.stnn")
        print(lm.generate("user: hello\\nagent:", max_tokens=40).text)
        print(lm.reply("what is six times seven").text)
    """

    def __init__(self, ptr, source):
        ffi, lib = _lib.get()
        self._ptr = ptr
        self.source = source
        c = lib.st_lm_model_config(ptr)
        self.n_layer, self.n_embd, self.vocab, self.n_ffn = c.n_layer, c.n_embd, c.vocab, c.n_ffn
        self.spiking = bool(c.spiking)
        self._tok = lib.st_lm_model_tokenizer(ptr)
        self._states = weakref.WeakSet()

    @classmethod
    def load(cls, path):
        """Our own file (kind "spikegpt") or the reference bundle's model.bin."""
        _, lib = _lib.get()
        path = os.fspath(path)
        return cls(_lib.new(lib.st_lm_model_load, _lib.cstr(path, "model path")), path)

    @classmethod
    def random(cls, n_layer=2, n_embd=32, vocab=256, n_ffn=None, spiking=True, seed=1,
               out_scale=30.0):
        """A model with RWKV-4's initialisation from a seed (st_lm_model_randomize):
        for experiments and tests; the same seed gives the same model."""
        ffi, lib = _lib.get()
        cfg = ffi.new("st_lm_config *", lib.st_lm_default_config())
        try:
            cfg.n_layer, cfg.n_embd, cfg.vocab = n_layer, n_embd, vocab
            cfg.n_ffn = n_ffn if n_ffn is not None else 4 * n_embd
        except (OverflowError, TypeError) as e:
            raise errors.InvalidError("LanguageModel.random: %s" % e, errors.INVALID)
        cfg.spiking = bool(spiking)
        ptr = _lib.new(lib.st_lm_model_new, cfg)
        lib.st_lm_model_randomize(ptr, int(seed), float(out_scale))
        return cls(ptr, "<random seed %d>" % seed)

    def save(self, path):
        _, lib = _lib.get()
        lib.st_error_clear()
        _lib.check(lib.st_lm_model_save(self._alive(), _lib.cstr(os.fspath(path), "path")))

    def twin(self, spiking=False):
        """The same weights as the dense RWKV-4 control (spiking=False)."""
        _, lib = _lib.get()
        return LanguageModel(_lib.new(lib.st_lm_model_twin, self._alive(), bool(spiking)),
                             self.source + (" (dense twin)" if not spiking else ""))

    def _alive(self):
        if self._ptr is None:
            raise errors.StateError("LanguageModel %s: used after close()" % self.source,
                                    errors.STATE)
        return self._ptr

    @property
    def kernel(self):
        ffi, lib = _lib.get()
        return ffi.string(lib.st_lm_model_kernel(self._alive())).decode()

    # ---- tokenizer ----

    def encode(self, text):
        """Text -> token ids (int32 array); unknown characters as the tokenizer says."""
        ffi, lib = _lib.get()
        self._alive()
        b = _lib.cstr(text)
        n = ffi.new("size_t *")
        lib.st_lm_tokenizer_encode(self._tok, b, len(b), ffi.NULL, 0, n, ffi.NULL)
        ids = np.empty(n[0], dtype=np.int32)
        lib.st_error_clear()
        _lib.check(lib.st_lm_tokenizer_encode(self._tok, b, len(b), _np.ptr(ids, "int32_t *"),
                                              ids.size, n, ffi.NULL))
        return ids

    def decode(self, ids):
        """Token ids -> text (ids out of range become U+FFFD)."""
        ffi, lib = _lib.get()
        self._alive()
        a = self._tokens(ids, "decode: ids", check=False)
        n = ffi.new("size_t *")
        lib.st_lm_tokenizer_decode(self._tok, _np.ptr(a, "int32_t *"), a.size, ffi.NULL, 0, n)
        buf = ffi.new("char[]", n[0] + 1)
        _lib.check(lib.st_lm_tokenizer_decode(self._tok, _np.ptr(a, "int32_t *"), a.size, buf,
                                              n[0] + 1, n))
        return ffi.buffer(buf, n[0])[:].decode("utf-8", "replace")

    def _tokens(self, ids, what, check=True):
        a = np.asarray(ids)
        if a.dtype.kind not in "iu" and a.size:
            raise errors.InvalidError("%s: dtype %s; expected integer token ids" % (what, a.dtype),
                                      errors.INVALID)
        if a.ndim > 1:
            raise errors.InvalidError("%s: shape %s; expected one dimension" % (what, a.shape),
                                      errors.INVALID)
        if check and a.size and (a.min() < 0 or a.max() >= self.vocab):
            raise errors.InvalidError("%s: token %d outside 0..%d" % (
                what, a.min() if a.min() < 0 else a.max(), self.vocab - 1), errors.INVALID)
        return np.ascontiguousarray(a.ravel(), dtype=np.int32)

    # ---- state and generation ----

    def new_state(self):
        """A fresh conversation (LMState)."""
        _, lib = _lib.get()
        s = LMState(self, _lib.new(lib.st_lm_state_new, self._alive()))
        self._states.add(s)
        return s

    def generate(self, prompt, max_tokens=64, on_token=None, state=None, greedy=True,
                 temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, seed=0,
                 stop_token=None, cancel=None):
        """Feeds the prompt (text, or token ids) and generates up to max_tokens.
        on_token(token_id, piece_text) is called for each token; return True
        from it to stop. cancel: a Cancel. state: an LMState to continue
        (default: a fresh one). Returns a Generation."""
        ffi, lib = _lib.get()
        model = self._alive()
        ids = self.encode(prompt) if isinstance(prompt, (str, bytes)) else self._tokens(
            prompt, "generate: prompt")
        if not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
            raise errors.InvalidError("generate: max_tokens = %r; must be >= 1" % (max_tokens,),
                                      errors.INVALID)
        sp = ffi.new("st_lm_sample_params *", lib.st_lm_sample_default_params())
        sp.greedy = bool(greedy)
        try:
            sp.temperature, sp.top_k, sp.top_p = temperature, top_k, top_p
            sp.repetition_penalty, sp.seed = repetition_penalty, seed
        except (OverflowError, TypeError) as e:
            raise errors.InvalidError("generate: sampling parameter: %s" % e, errors.INVALID)
        sampler = _lib.new(lib.st_lm_sampler_new, self.vocab, sp)
        own = state is None
        st = self.new_state() if own else state
        if st.model is not self:
            raise errors.InvalidError("generate: the state belongs to another model",
                                      errors.INVALID)
        gp = ffi.new("st_lm_generate_params *", lib.st_lm_generate_default_params())
        gp.max_tokens = max_tokens
        gp.stop_token = -1 if stop_token is None else stop_token
        if cancel is not None:
            gp.cancel = cancel._flag
        failure = []
        cb = None
        if on_token is not None:
            def trampoline(tok, piece, n, _ud):
                try:
                    return 1 if on_token(tok, ffi.buffer(piece, n)[:].decode("utf-8", "replace")) \
                        else 0
                except BaseException as e:  # re-raised after C returns
                    failure.append(e)
                    return 1
            cb = ffi.callback("int(int32_t, const char *, size_t, void *)", trampoline)
            gp.on_token = cb
        out = np.empty(max_tokens, dtype=np.int32)
        res = ffi.new("st_lm_generate_result *")
        try:
            lib.st_error_clear()
            _lib.check(lib.st_lm_generate(model, st._alive(), sampler,
                                          _np.ptr(ids, "int32_t *") if ids.size else ffi.NULL,
                                          ids.size, gp, _np.ptr(out, "int32_t *"), max_tokens,
                                          res))
        finally:
            _lib.destroy(lib.st_lm_sampler_destroy, sampler)
            if own:
                st.close()
        if failure:
            raise failure[0]
        toks = out[:res.n_generated].copy()
        return Generation(self.decode(toks), toks, STOPS[res.stop], res.n_prompt,
                          res.first_token_s, res.total_s)

    def reply(self, text, max_tokens=400, hour=None, minute=0, on_timer=None):
        """The agent's answer to one line of user text (st_dialogue_reply):
        greedy, tools executed (the time tool reads hour:minute when given,
        else the system clock; on_timer(seconds, label) when the model sets a
        timer). Returns a Reply."""
        ffi, lib = _lib.get()
        p = ffi.new("st_dialogue_params *", lib.st_dialogue_default_params())
        p.max_tokens = max_tokens
        if hour is not None:
            p.tools.hour, p.tools.minute = hour, minute
        cb = None
        if on_timer is not None:
            def timer(seconds, label, _ud):
                try:
                    on_timer(seconds, ffi.string(label).decode() if label != ffi.NULL else "")
                except Exception:
                    pass
            cb = ffi.callback("void(long long, const char *, void *)", timer)
            p.tools.on_timer = cb
        buf = ffi.new("char[]", 4096)
        info = ffi.new("st_dialogue_info *")
        lib.st_error_clear()
        _lib.check(lib.st_dialogue_reply(self._alive(), _lib.cstr(text, "reply: text"), p, buf,
                                         4096, info))
        return Reply(ffi.string(buf).decode("utf-8", "replace"),
                     ffi.string(info.transcript).decode("utf-8", "replace"), info.n_tools,
                     bool(info.tool_error), info.timer_s, bool(info.fallback), info.n_tokens,
                     info.seconds)

    def close(self):
        if self._ptr is not None:
            for s in list(self._states):
                s.close()
            self._states = weakref.WeakSet()
            _, lib = _lib.get()
            _lib.destroy(lib.st_lm_model_destroy, self._ptr)
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


def normalize(text):
    """User text as the dialogue model saw it in training (st_dialogue_normalize)."""
    ffi, lib = _lib.get()
    b = _lib.cstr(text)
    cap = 16 * len(b) + 64
    buf = ffi.new("char[]", cap)
    lib.st_dialogue_normalize(b, buf, cap)
    return ffi.string(buf).decode("utf-8", "replace")


def tool(call, hour=None, minute=0):
    """Runs one tool call ("calc seven times six", "time", "timer 5 minutes")
    as the dialogue runtime does; InvalidError for one it cannot read."""
    ffi, lib = _lib.get()
    tools = ffi.new("st_dialogue_tools *", lib.st_dialogue_default_params().tools)
    if hour is not None:
        tools.hour, tools.minute = hour, minute
    b = _lib.cstr(call)
    buf = ffi.new("char[]", 256)
    lib.st_error_clear()
    _lib.check(lib.st_dialogue_tool(tools, b, len(b), buf, 256))
    return ffi.string(buf).decode()


class LMState:
    """One conversation's recurrent state (st_lm_state)."""

    def __init__(self, model, ptr):
        self.model = model
        self._ptr = ptr

    def _alive(self):
        if self._ptr is None or self.model._ptr is None:
            raise errors.StateError("LMState: used after close()", errors.STATE)
        return self._ptr

    def feed(self, tokens, all_logits=False):
        """Feeds tokens (text or ids; the parallel mode, bit-identical to one
        at a time) and returns the logits after the last ([vocab]), or after
        each ([n, vocab]) with all_logits."""
        ffi, lib = _lib.get()
        m = self.model
        ids = m.encode(tokens) if isinstance(tokens, (str, bytes)) else m._tokens(
            tokens, "feed: tokens")
        if ids.size == 0:
            raise errors.InvalidError("feed: no tokens", errors.INVALID)
        logits = np.empty((ids.size if all_logits else 1, m.vocab), dtype=np.float32)
        lib.st_error_clear()
        _lib.check(lib.st_lm_forward(m._ptr, self._alive(), _np.ptr(ids, "int32_t *"), ids.size,
                                     _np.ptr(logits), bool(all_logits), ffi.NULL))
        return logits if all_logits else logits[0]

    def step(self, token):
        """Feeds one token; returns the next token's logits."""
        _, lib = _lib.get()
        m = self.model
        logits = np.empty(m.vocab, dtype=np.float32)
        lib.st_error_clear()
        _lib.check(lib.st_lm_step(m._ptr, self._alive(), int(token), _np.ptr(logits)))
        return logits

    @property
    def tokens(self):
        """Tokens fed since the last reset."""
        return _lib.get()[1].st_lm_state_tokens(self._alive())

    def data(self):
        """The recurrent state (7 n_embd floats per layer), a copy."""
        _, lib = _lib.get()
        return _np.copy_f32(lib.st_lm_state_data(self._alive()), lib.st_lm_state_len(self.model._ptr))

    def fork(self):
        """A branch of the conversation: a new state holding a copy of this one."""
        _, lib = _lib.get()
        s = LMState(self.model, _lib.new(lib.st_lm_state_fork, self._alive()))
        self.model._states.add(s)
        return s

    def reset(self):
        _lib.get()[1].st_lm_state_reset(self._alive())

    def close(self):
        if self._ptr is not None:
            if self.model._ptr is not None:
                _lib.destroy(_lib.get()[1].st_lm_state_destroy, self._ptr)
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
