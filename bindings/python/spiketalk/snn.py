"""spiketalk.snn - the spiking neural network engine (snn/snn.h) from Python:
neuron populations, networks loaded from our .stm files or NIR graphs (or
built here), per-stream state, stepping over numpy arrays of input currents
or spikes, membranes, spikes and operation counters.

Same arithmetic as the C API, because it is the C API: every step is one
st_snn_step() on a float32 buffer; Python only moves arrays in and out.
Tuned for what a researcher runs from a notebook: a few thousand steps of a
network of up to ~10,000 neurons, recorded per step into preallocated numpy
arrays (the per-step cost in Python is a few microseconds).

A Net is immutable and shared; a State belongs to one thread at a time
(snn/snn.h). Closing a Net closes its States first, so no State outlives
the C net it points into.
"""
import os
import weakref
from collections import namedtuple

import numpy as np

from . import _lib, _np, errors

MODELS = ("lif", "li", "lifbox", "libox", "iaf", "lsnn", "adex", "cubalif", "cubali",
          "integrator", "lifrefrac", "lif_ei")
NODE_KINDS = ("input", "output", "dense", "sparse", "conv", "scale", "neurons", "threshold",
              "delay")
VARS = {"v": 0, "i": 1, "b": 2, "a": 3, "i_inh": 4, "rho": 5}
CONVENTIONS = ("norse", "snntorch", "rockpool", "exact")
RESETS = ("auto", "value", "subtract")

Node = namedtuple("Node", "id name kind n_in n_out n_weights model order")
Node.__doc__ = """One node of a network: kind is one of NODE_KINDS, model the
neuron model's name for a neurons node (None otherwise)."""

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _model_id(model):
    if isinstance(model, int):
        return model
    ffi, lib = _lib.get()
    out = ffi.new("int *")
    _lib.check(lib.st_snn_model_from_name(_lib.cstr(model, "neuron model"), out))
    return out[0]


def neuron_params(model, **params):
    """The C parameter struct for `model` ("lif", ...): Norse's defaults,
    then each NAME=VALUE through st_snn_neuron_set_param (Norse's names, e.g.
    tau_mem_inv=100, v_th=1, reset="subtract"; dt in seconds). Unknown names
    raise NotFoundError listing the valid ones."""
    ffi, lib = _lib.get()
    p = ffi.new("st_snn_neuron_params *", lib.st_snn_neuron_default_params(_model_id(model)))
    for name, value in params.items():
        if name == "dt":
            value = float(value)
            if not value > 0:
                raise errors.InvalidError("dt: %r; must be > 0 seconds" % value, errors.INVALID)
            p.dt = value
            continue
        lib.st_error_clear()
        _lib.check(lib.st_snn_neuron_set_param(p, _lib.cstr(name), _lib.cstr(str(value))))
    return p


def _vars_of(model):
    has_i = model not in ("lifbox", "libox", "iaf", "integrator")
    names = ["v"] + (["i"] if has_i else [])
    if model == "lsnn":
        names.append("b")
    if model == "adex":
        names.append("a")
    if model == "lif_ei":
        names += ["i_inh", "rho"]
    if model == "lifrefrac":
        names.append("rho")
    return names


class Neurons:
    """A population of n neurons of one model (st_snn_neurons): the
    `spiketalk snn trace` of Python.

        pop = Neurons("lif", n=2, tau_mem_inv=100)
        tr = pop.run(currents)        # currents: [T, n] (2n for lif_ei)
        tr["z"], tr["v"], tr["i"]     # [T, n] each, as Norse's traces
    """

    def __init__(self, model="lif", n=1, **params):
        ffi, lib = _lib.get()
        if not isinstance(n, int) or n < 1:
            raise errors.InvalidError("Neurons: n = %r; must be a whole number >= 1" % (n,),
                                      errors.INVALID)
        self._p = neuron_params(model, **params)
        self._ptr = _lib.new(lib.st_snn_neurons_new, self._p, n)
        self.model = ffi.string(lib.st_snn_model_name(self._p.model)).decode()
        self.n = n
        self.spiking = bool(lib.st_snn_model_spikes(self._p.model))
        self.input_len = lib.st_snn_neurons_input_len(self._ptr)
        self.state_len = lib.st_snn_neurons_state_len(self._ptr)
        self.state = np.empty(self.state_len, dtype=np.float32)
        self.reset()

    def reset(self):
        """Back to the model's initial state."""
        _, lib = _lib.get()
        lib.st_snn_neurons_init_state(self._alive(), _np.ptr(self.state))

    def _alive(self):
        if self._ptr is None:
            raise errors.StateError("Neurons: used after close()", errors.STATE)
        return self._ptr

    def var(self, name):
        """A view of variable `name` ("v", "i", "b", "a", "i_inh", "rho") in
        the state (writable: for initial conditions), or KeyError."""
        ffi, lib = _lib.get()
        if name not in VARS:
            raise KeyError(name)
        p = lib.st_snn_neurons_var(self._alive(), _np.ptr(self.state), VARS[name])
        if p == ffi.NULL:
            raise KeyError("%s has no variable %r" % (self.model, name))
        off = (int(ffi.cast("uintptr_t", p)) - self.state.ctypes.data) // 4
        return self.state[off:off + self.n]

    def step(self, x):
        """One step on input x (input_len values); returns the output (z for
        spiking models, v otherwise) as a new array."""
        _, lib = _lib.get()
        x = _np.f32(x, "Neurons.step: x", length=self.input_len)
        out = np.empty(self.n, dtype=np.float32)
        fired = np.empty(self.n, dtype=np.uint32)
        lib.st_snn_neurons_step(self._alive(), _np.ptr(self.state), _np.ptr(x), _np.ptr(out),
                                _np.ptr(fired, "uint32_t *"))
        return out

    def run(self, currents):
        """Steps over currents [T, input_len]; returns a dict of [T, n]
        arrays: "z" (spiking models) or "out", and every state variable the
        model has, each recorded after its step."""
        x = _np.f32(currents, "Neurons.run: currents", ndim=2, last=self.input_len)
        T = x.shape[0]
        names = [v for v in _vars_of(self.model)]
        rec = {("z" if self.spiking else "out"): np.empty((T, self.n), dtype=np.float32)}
        for v in names:
            rec[v] = np.empty((T, self.n), dtype=np.float32)
        key = "z" if self.spiking else "out"
        for t in range(T):
            rec[key][t] = self.step(x[t])
            for v in names:
                rec[v][t] = self.var(v)
        return rec

    def close(self):
        if self._ptr is not None:
            _, lib = _lib.get()
            _lib.destroy(lib.st_snn_neurons_destroy, self._ptr)
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


def nir_params(dt=None, convention="norse", reset="auto"):
    ffi, lib = _lib.get()
    p = ffi.new("st_nir_params *", lib.st_nir_default_params())
    if dt is not None:
        dt = float(dt)
        if not dt > 0:
            raise errors.InvalidError("NIR dt: %r; must be > 0 seconds" % dt, errors.INVALID)
        p.dt_s = dt
    out = ffi.new("int *")
    _lib.check(lib.st_nir_convention_from_name(_lib.cstr(convention, "convention"), out))
    p.convention = out[0]
    if reset not in RESETS:
        raise errors.InvalidError("NIR reset: %r; expected one of %s" % (reset, ", ".join(RESETS)),
                                  errors.INVALID)
    p.reset = RESETS.index(reset)
    return p


class Net:
    """A finished network (st_snn_net): immutable, shared by its States.

        net = Net.load("model.stm")                   # or a .nir graph
        net = Net.load("g.nir", dt=1e-4, convention="snntorch")
    """

    def __init__(self, ptr, source="<new>"):
        self._ptr = ptr
        self.source = source
        self._states = weakref.WeakSet()

    # ---- making one ----

    @classmethod
    def load(cls, path, dt=None, convention="norse", reset="auto"):
        """Loads our model file (.stm, `spiketalk snn run`'s MODEL) or a NIR
        graph (HDF5), told apart by the file's first bytes as the CLI does.
        dt, convention and reset are for NIR (docs/NIR.md)."""
        _, lib = _lib.get()
        p = _lib.cstr(os.fspath(path) if isinstance(path, os.PathLike) else path, "model path")
        head = b""
        try:
            with open(p, "rb") as f:
                head = f.read(8)
        except OSError:
            pass  # the C loader reports it, naming the path
        if head == HDF5_MAGIC:
            ptr = _lib.new(lib.st_snn_net_load_nir, p, nir_params(dt, convention, reset))
        else:
            ptr = _lib.new(lib.st_snn_net_load, p)
        return cls(ptr, p.decode("utf-8", "replace"))

    @classmethod
    def from_bytes(cls, data):
        """Loads a .stm image held in memory."""
        _, lib = _lib.get()
        data = bytes(data)
        return cls(_lib.new(lib.st_snn_net_load_mem, data, len(data)), "<memory>")

    def save(self, path):
        _, lib = _lib.get()
        lib.st_error_clear()
        _lib.check(lib.st_snn_net_save(self._alive(), _lib.cstr(os.fspath(path), "path")))

    def save_nir(self, path, dt=None):
        """Exports as NIR in the norse convention (dt: the populations' own
        when None)."""
        _, lib = _lib.get()
        p = nir_params(dt) if dt is not None else _lib.get()[0].NULL
        lib.st_error_clear()
        _lib.check(lib.st_snn_net_save_nir(self._alive(), _lib.cstr(os.fspath(path), "path"), p))

    # ---- what it holds ----

    def _alive(self):
        if self._ptr is None:
            raise errors.StateError("Net %s: used after close()" % self.source, errors.STATE)
        return self._ptr

    @property
    def input_len(self):
        """Values per step st_snn_step takes: the inputs' lengths, concatenated."""
        _, lib = _lib.get()
        return lib.st_snn_net_input_len(self._alive())

    def node(self, node):
        """A Node by id or name (NotFoundError / InvalidError)."""
        ffi, lib = _lib.get()
        nid = self.find(node) if isinstance(node, str) else node
        info = ffi.new("st_snn_node_info *")
        lib.st_error_clear()
        _lib.check(lib.st_snn_net_node_info(self._alive(), int(nid), info))
        model = None
        if info.kind == NODE_KINDS.index("neurons"):
            model = ffi.string(lib.st_snn_model_name(info.model)).decode()
        return Node(int(nid), ffi.string(info.name).decode(), NODE_KINDS[info.kind], info.n_in,
                    info.n_out, info.n_weights, model, info.order)

    @property
    def nodes(self):
        _, lib = _lib.get()
        return [self.node(k) for k in range(lib.st_snn_net_node_count(self._alive()))]

    def find(self, name):
        """The id of the node called `name`; NotFoundError naming it."""
        _, lib = _lib.get()
        k = lib.st_snn_net_find(self._alive(), _lib.cstr(name, "node name"))
        if k < 0:
            raise errors.NotFoundError("net %s: no node called '%s' (nodes: %s)" % (
                self.source, name, ", ".join(n.name for n in self.nodes)), errors.NOT_FOUND)
        return k

    @property
    def outputs(self):
        """The output nodes, in id order (what `spiketalk snn run` prints)."""
        return [n for n in self.nodes if n.kind == "output"]

    def new_state(self):
        """A State for one stream, at the initial values."""
        _, lib = _lib.get()
        s = State(self, _lib.new(lib.st_snn_state_new, self._alive()))
        self._states.add(s)
        return s

    def run(self, inputs, record=None):
        """A fresh State's run(inputs, record): see State.run."""
        with self.new_state() as s:
            return s.run(inputs, record)

    def close(self):
        """Frees the net, closing its States first; idempotent."""
        if self._ptr is not None:
            for s in list(self._states):
                s.close()
            _, lib = _lib.get()
            _lib.destroy(lib.st_snn_net_destroy, self._ptr)
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

    def __repr__(self):
        if self._ptr is None:
            return "<spiketalk.Net %s (closed)>" % self.source
        return "<spiketalk.Net %s: %d nodes, %d inputs>" % (self.source, len(self.nodes),
                                                             self.input_len)


class NetBuilder:
    """Builds a Net node by node (st_snn_net_add_*), for experiments:

        b = NetBuilder()
        i = b.input("in", 3); d = b.dense("fc", w); p = b.neurons("lif", "lif", 4)
        b.connect(i, d); b.connect(d, p); net = b.finish()
    """

    def __init__(self):
        _, lib = _lib.get()
        self._ptr = _lib.new(lib.st_snn_net_new)

    def _add(self, fn, *args):
        _, lib = _lib.get()
        if self._ptr is None:
            raise errors.StateError("NetBuilder: already finished", errors.STATE)
        lib.st_error_clear()
        return _lib.check(fn(self._ptr, *args))

    def input(self, name, n):
        _, lib = _lib.get()
        return self._add(lib.st_snn_net_add_input, _lib.cstr(name), int(n))

    def output(self, name, n):
        _, lib = _lib.get()
        return self._add(lib.st_snn_net_add_output, _lib.cstr(name), int(n))

    def dense(self, name, w, bias=None):
        """w: [n_out, n_in] (PyTorch's Linear layout); bias: n_out or None."""
        ffi, lib = _lib.get()
        w = _np.f32(w, "dense %s: w" % name, ndim=2)
        b = ffi.NULL
        if bias is not None:
            bias = _np.f32(bias, "dense %s: bias" % name, length=w.shape[0])
            b = _np.ptr(bias)
        return self._add(lib.st_snn_net_add_dense, _lib.cstr(name), w.shape[0], w.shape[1],
                         _np.ptr(w), b)

    def scale(self, name, s):
        _, lib = _lib.get()
        s = _np.f32(s, "scale %s" % name, ndim=1)
        return self._add(lib.st_snn_net_add_scale, _lib.cstr(name), s.size, _np.ptr(s))

    def threshold(self, name, th):
        _, lib = _lib.get()
        th = _np.f32(th, "threshold %s" % name, ndim=1)
        return self._add(lib.st_snn_net_add_threshold, _lib.cstr(name), th.size, _np.ptr(th))

    def neurons(self, name, model, n, **params):
        _, lib = _lib.get()
        return self._add(lib.st_snn_net_add_neurons, _lib.cstr(name),
                         neuron_params(model, **params), int(n))

    def connect(self, src, dst):
        _, lib = _lib.get()
        self._add(lib.st_snn_net_connect, int(src), int(dst))

    def finish(self):
        """The finished Net (the builder is spent)."""
        _, lib = _lib.get()
        self._add(lib.st_snn_net_finish)
        net, self._ptr = Net(self._ptr), None
        return net

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            try:
                _lib.destroy(_lib.get()[1].st_snn_net_destroy, self._ptr)
            except Exception:
                pass


def _probe(net, probe):
    """'NODE' or 'NODE:VAR' (as `snn run --probe`) -> (key, node id, var or None, n)."""
    if isinstance(probe, tuple):
        name, var = probe
        key = "%s:%s" % probe
    else:
        name, _, var = str(probe).partition(":")
        var = var or None
        key = probe
    node = net.node(name)
    if var is not None and var not in VARS:
        raise errors.InvalidError("probe %s: no variable '%s' (v, i, b, a, i_inh, rho)" % (key, var),
                                  errors.INVALID)
    return key, node.id, var, node.n_out


class State:
    """One stream's state for a Net (st_snn_state). Made by Net.new_state()."""

    def __init__(self, net, ptr):
        self.net = net
        self._ptr = ptr
        self._in_len = net.input_len

    def _alive(self):
        if self._ptr is None or self.net._ptr is None:
            raise errors.StateError("State: used after close()", errors.STATE)
        return self._ptr

    def step(self, x=None):
        """One time step on x (net.input_len values; None for a net with no
        input)."""
        ffi, lib = _lib.get()
        s = self._alive()
        if self._in_len == 0:
            if x is not None and np.size(x):
                raise errors.InvalidError("State.step: the net takes no input", errors.INVALID)
            lib.st_snn_step(self.net._ptr, s, ffi.NULL)
            return
        x = _np.f32(x, "State.step: x", length=self._in_len)
        lib.st_snn_step(self.net._ptr, s, _np.ptr(x))

    def run(self, inputs, record=None):
        """Steps over inputs [T, input_len] (currents, or spikes as 0/1 of
        any real dtype; an int T for a net with no input) and returns a dict
        of [T, n] float32 arrays, one per probe in `record`: "NODE" (its
        output) or "NODE:VAR" (a population's state variable: v, i, b, a).
        record None: the net's output nodes, as `spiketalk snn run`."""
        ffi, lib = _lib.get()
        s = self._alive()
        if isinstance(inputs, (int, np.integer)) and self._in_len == 0:
            T, x, base = int(inputs), None, ffi.NULL
        else:
            x = _np.f32(inputs, "State.run: inputs", ndim=2, last=self._in_len)
            T = x.shape[0]
            base = _np.ptr(x)
        if record is None:
            record = [n.name for n in self.net.outputs]
        probes = [_probe(self.net, r) for r in ([record] if isinstance(record, str) else record)]
        rec = {}
        dests = []
        for key, nid, var, n in probes:
            a = np.empty((T, n), dtype=np.float32)
            rec[key] = a
            if var is not None:
                p = lib.st_snn_state_var(s, nid, VARS[var])
                if p == ffi.NULL:
                    raise errors.InvalidError("probe %s: node has no variable '%s'" % (key, var),
                                              errors.INVALID)
                dests.append((_np.ptr(a), nid, p, n))
            else:
                dests.append((_np.ptr(a), nid, None, n))
        net = self.net._ptr
        step = lib.st_snn_step
        out = lib.st_snn_state_output
        memmove = ffi.memmove
        L = self._in_len
        for t in range(T):
            step(net, s, base + t * L if x is not None else base)
            for dst, nid, p, n in dests:
                memmove(dst + t * n, p if p is not None else out(s, nid, ffi.NULL), 4 * n)
        return rec

    def output(self, node):
        """The node's output of the last step (a copy)."""
        ffi, lib = _lib.get()
        nid = self.net.find(node) if isinstance(node, str) else int(self.net.node(node).id)
        n = ffi.new("size_t *")
        p = lib.st_snn_state_output(self._alive(), nid, n)
        return _np.copy_f32(p, n[0])

    def spikes(self, node):
        """Indices that spiked on the last step (uint32, ascending), or None
        when the node's output was real-valued."""
        ffi, lib = _lib.get()
        nid = self.net.find(node) if isinstance(node, str) else int(self.net.node(node).id)
        n = ffi.new("size_t *")
        p = lib.st_snn_state_spikes(self._alive(), nid, n)
        if p == ffi.NULL:
            return None
        out = np.empty(n[0], dtype=np.uint32)
        if n[0]:
            ffi.memmove(ffi.from_buffer(out), p, 4 * n[0])
        return out

    def _var_ptr(self, node, var):
        ffi, lib = _lib.get()
        nid = self.net.find(node) if isinstance(node, str) else int(self.net.node(node).id)
        if var not in VARS:
            raise errors.InvalidError("variable '%s': expected one of %s" % (var, ", ".join(VARS)),
                                      errors.INVALID)
        p = lib.st_snn_state_var(self._alive(), nid, VARS[var])
        if p == ffi.NULL:
            raise errors.InvalidError("node %s has no variable '%s'" % (node, var), errors.INVALID)
        return p, self.net.node(nid).n_out

    def var(self, node, var="v"):
        """A population's state variable (membrane v by default), a copy."""
        p, n = self._var_ptr(node, var)
        return _np.copy_f32(p, n)

    def set_var(self, node, var, values):
        """Sets a population's state variable (initial conditions)."""
        ffi, _ = _lib.get()
        p, n = self._var_ptr(node, var)
        v = _np.f32(values, "set_var %s:%s" % (node, var), length=n)
        ffi.memmove(p, ffi.from_buffer(v), 4 * n)

    def reset(self):
        """Back to the initial values; counters are kept."""
        _lib.get()[1].st_snn_state_reset(self._alive())

    def force_dense(self, on=True):
        """Forces the multiply-accumulate path for spike inputs (same results)."""
        _lib.get()[1].st_snn_state_set_path(self._alive(), 1 if on else 0)

    def counters(self, node=None):
        """Operation counters of a node, or of the whole run (None): steps,
        neuron_updates, syn_ops, dense_macs, spikes, spike_slots, spike_rate."""
        ffi, lib = _lib.get()
        nid = -1 if node is None else (self.net.find(node) if isinstance(node, str) else int(node))
        c = ffi.new("st_snn_counters *")
        lib.st_error_clear()
        _lib.check(lib.st_snn_state_counters(self._alive(), nid, c))
        return {k: getattr(c, k) for k in ("steps", "neuron_updates", "syn_ops", "dense_macs",
                                            "spikes", "spike_slots", "spike_rate")}

    def profile(self):
        """Counters of every node by name, and "total": `snn profile`'s figures."""
        out = {n.name: self.counters(n.id) for n in self.net.nodes}
        out["total"] = self.counters()
        return out

    def clear_counters(self):
        _lib.get()[1].st_snn_state_clear_counters(self._alive())

    @property
    def nbytes(self):
        """Bytes of memory this stream's state holds."""
        return _lib.get()[1].st_snn_state_bytes(self._alive())

    def save(self):
        """A snapshot of the state (bytes; counters are not part of it)."""
        ffi, lib = _lib.get()
        n = lib.st_snn_state_save_len(self._alive())
        buf = ffi.new("char[]", n)
        _lib.check(lib.st_snn_state_save(self._ptr, buf, n))
        return ffi.buffer(buf, n)[:]

    def restore(self, snapshot):
        """Puts a snapshot back; FormatError for a truncated, corrupt or
        foreign one."""
        _, lib = _lib.get()
        b = bytes(snapshot)
        lib.st_error_clear()
        _lib.check(lib.st_snn_state_restore(self._alive(), b, len(b)))

    def close(self):
        if self._ptr is not None:
            if self.net._ptr is not None:
                _lib.destroy(_lib.get()[1].st_snn_state_destroy, self._ptr)
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


def kernels():
    """The kernels this machine runs: "avx2" or "portable"."""
    ffi, lib = _lib.get()
    return ffi.string(lib.st_snn_kernels()).decode()
