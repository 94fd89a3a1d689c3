#!/usr/bin/env python3
"""tools/make_grad_fixtures.py - gradient fixtures for `spiketalk-tests train`.

Builds small spiking networks in PyTorch (python3-torch; no Norse needed),
written here by hand with the exact equations of spiketalk's trainer
(snn/train_neuron.c, which are Norse's and the engine's), runs them on fixed
weights and inputs, and writes the weights, inputs, loss, read-out and the
gradients autograd computes to tests/fixtures/train_grad_*.bin. The C tests
rebuild the same network from the configuration text stored in the fixture,
load the same weights and compare - they do not need torch.

    sudo apt-get install python3-torch      # Debian 12: PyTorch 1.13
    /usr/bin/python3 tools/make_grad_fixtures.py

Spikes are hard (u = v - threshold > 0) with the surrogate's pseudo-
derivative in the backward, the reset detached as Norse does. The forward
runs in float64 on weights that are exact float32 values; the script checks
that no membrane is within 1e-3 of its threshold at any step, so float32 in
C takes the same spike decisions, and the gradients agree to ~1e-5.

File format (little-endian): b"STGF", u32 version (1), u32 count, then per
record: u32 name length, name bytes, u32 type (0: float32, 1: text),
u32 element count, the elements.
"""
import math
import os
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit("make_grad_fixtures.py needs PyTorch: sudo apt-get install python3-torch "
             "(and run it with /usr/bin/python3)")

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def f32(x):
    """Rounds to the nearest float32, kept as float64."""
    return torch.as_tensor(x, dtype=torch.float64).to(torch.float32).to(torch.float64)


# ---- surrogates --------------------------------------------------------------------------

class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, kind, alpha):
        ctx.save_for_backward(u)
        ctx.kind, ctx.alpha = kind, alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        if ctx.kind == "arctan":
            d = (a / 2) / (1 + (math.pi / 2 * a * u) ** 2)
        else:  # superspike, fast_sigmoid
            d = 1.0 / (a * u.abs() + 1.0) ** 2
        return g * d, None, None


MARGIN = [float("inf")]


def spike(u, surr):
    MARGIN[0] = min(MARGIN[0], float(u.abs().min()))
    return Spike.apply(u, surr[0], surr[1])


# ---- layers: the trainer's equations -------------------------------------------------------

class Layer:
    def __init__(self, name, kind, n_in, model, p, recurrent=False, bias=True, train_tau=False,
                 train_threshold=False, conv=None):
        self.name, self.kind, self.n_in, self.model, self.p = name, kind, n_in, model, p
        self.recurrent, self.bias = recurrent, bias
        self.train_tau, self.train_threshold = train_tau, train_threshold
        self.conv = conv  # (in_channels, out_channels, kernel, stride, padding)
        if kind == "dense":
            self.n = p["neurons"]
        else:
            ci, co, k, s, pad = conv
            self.len_in = n_in // ci
            self.len_out = (self.len_in + 2 * pad - k) // s + 1
            self.n = co * self.len_out
        self.params = {}

    def init(self, gen, scale, rec_scale):
        n, n_in = self.n, self.n_in
        if self.kind == "dense":
            w = (torch.rand(n_in, n, generator=gen) * 2 - 1) * scale / math.sqrt(n_in)
        else:
            ci, co, k, _, _ = self.conv
            w = (torch.rand(co, ci, k, generator=gen) * 2 - 1) * scale / math.sqrt(ci * k)
        self.params["w"] = f32(w)
        if self.bias:
            nb = n if self.kind == "dense" else self.conv[1]
            self.params["b"] = f32((torch.rand(nb, generator=gen) * 2 - 1) * 0.1)
        if self.recurrent:
            self.params["rec"] = f32((torch.rand(n, n, generator=gen) * 2 - 1) * rec_scale
                                     / math.sqrt(n))
        dt = float(f32(self.p["dt"]))
        a0 = float(f32(dt * float(f32(self.p["tau_mem_inv"]))))
        s0 = float(f32(dt * float(f32(self.p["tau_syn_inv"]))))
        self.fix = {"a": torch.full((n,), a0), "s": torch.full((n,), s0),
                    "th": torch.full((n,), float(f32(self.p.get("v_th", 1.0))))}
        if self.model == "lsnn":
            self.fix["ad"] = torch.full((n,), float(f32(dt * float(f32(self.p["tau_adapt_inv"])))))
        if self.train_tau:
            # spread the rates so each neuron's differs
            self.params["a"] = f32(self.fix["a"] * (0.8 + 0.4 * torch.rand(n, generator=gen)))
            self.params["s"] = f32(self.fix["s"] * (0.8 + 0.4 * torch.rand(n, generator=gen)))
            if self.model == "lsnn":
                self.params["ad"] = f32(self.fix["ad"] * (0.8 + 0.4 * torch.rand(n, generator=gen)))
        if self.train_threshold and self.model != "li":
            self.params["th"] = f32(self.fix["th"] * (0.9 + 0.2 * torch.rand(n, generator=gen)))
        for t in self.params.values():
            t.requires_grad_(True)

    def coef(self, key):
        return self.params[key] if key in self.params else self.fix[key]

    def feedforward(self, x):  # x [T, B, n_in] -> [T, B, n]
        if self.kind == "dense":
            y = x @ self.params["w"]
            if self.bias:
                y = y + self.params["b"]
            return y
        ci, co, k, s, pad = self.conv
        T, B, _ = x.shape
        xi = x.reshape(T * B, ci, self.len_in)
        y = torch.nn.functional.conv1d(xi, self.params["w"], self.params.get("b"), stride=s,
                                       padding=pad)
        return y.reshape(T, B, self.n)

    def forward(self, x, surr):
        p, T, B, n = self.p, x.shape[0], x.shape[1], self.n
        ff = self.feedforward(x)
        a, s, th = self.coef("a"), self.coef("s"), self.coef("th")
        vl, vr = float(f32(p.get("v_leak", 0.0))), float(f32(p.get("v_reset", 0.0)))
        reset = p.get("reset", "value")
        v = torch.full((B, n), vl)
        i = torch.zeros(B, n)
        b = th.expand(B, n) if self.model == "lsnn" else None
        z = torch.zeros(B, n)
        outs = []
        for t in range(T):
            c = ff[t]
            if self.recurrent and t > 0:
                c = c + z @ self.params["rec"]
            if self.model in ("lif", "li"):
                ij = i + c
                vd = v + a * ((vl - v) + ij)
                i = ij - s * ij
                if self.model == "li":
                    v = vd
                    outs.append(vd)
                    continue
                thr = th
            elif self.model == "cubalif":
                w_in, r = float(f32(p.get("w_in", 1.0))), float(f32(p.get("r", 1.0)))
                i = i + s * ((-i) + w_in * c)
                vd = v + a * ((vl - v) + r * i)
                thr = th
            else:  # lsnn
                vd = v + a * ((vl - v) + i)
                idd = i - s * i
                bd = b + self.coef("ad") * (th - b)
                thr = bd
            zz = spike(vd - thr, surr)
            zd = zz.detach()
            if reset == "value":
                v = (1 - zd) * vd + zd * vr
            elif reset == "subtract":
                v = vd - zd * thr
            else:
                v = vd
            if self.model == "lsnn":
                b = bd + float(f32(p["beta"])) * zz
                i = idd + c
            z = zz
            outs.append(zz)
        return torch.stack(outs)

    def config(self):
        p = self.p
        lines = [f"[layer {self.name}]", f"type = {self.kind}", f"model = {self.model}"]
        if self.kind == "dense":
            lines.append(f"neurons = {self.n}")
        else:
            ci, co, k, s, pad = self.conv
            lines += [f"in_channels = {ci}", f"out_channels = {co}", f"kernel = {k}",
                      f"stride = {s}", f"padding = {pad}"]
        lines += [f"recurrent = {'yes' if self.recurrent else 'no'}",
                  f"bias = {'yes' if self.bias else 'no'}",
                  f"train_tau = {'yes' if self.train_tau else 'no'}",
                  f"train_threshold = {'yes' if self.train_threshold else 'no'}",
                  f"dt = {p['dt']!r}"]
        keys = {"li": ("tau_syn_inv", "tau_mem_inv", "v_leak"),
                "lif": ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "reset"),
                "lsnn": ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "v_leak", "v_th",
                         "v_reset", "beta", "reset"),
                "cubalif": ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "w_in",
                            "r", "reset")}[self.model]
        for key in keys:
            if key in p:
                lines.append(f"{key} = {p[key]}")
        return "\n".join(lines) + "\n"


# ---- losses --------------------------------------------------------------------------------

def loss_fn(y, steps, labels, loss, spiking_outs, rate_reg, rate_target, blank=0):
    B = y.shape[1]
    total = 0
    for bi in range(B):
        Tb = steps[bi]
        yb = y[:Tb, bi]
        if loss == "ctc":
            lp = torch.log_softmax(yb, dim=1).unsqueeze(1)
            tgt = torch.tensor([[l + 1 if l >= blank else l for l in labels[bi]]])
            total = total + torch.nn.functional.ctc_loss(
                lp, tgt, torch.tensor([Tb]), torch.tensor([len(labels[bi])]), blank=blank,
                reduction="sum")
        else:
            logit = {"ce_max": lambda: yb.max(0).values, "ce_mean": lambda: yb.mean(0),
                     "ce_last": lambda: yb[-1]}[loss]()
            total = total + torch.nn.functional.cross_entropy(logit.unsqueeze(0),
                                                              torch.tensor([labels[bi]]))
        for z in spiking_outs:
            r = z[:Tb, bi].mean(0)
            total = total + rate_reg * ((r - rate_target) ** 2).mean()
    return total / B


# ---- fixtures --------------------------------------------------------------------------------

def write(path, records):
    with open(path, "wb") as f:
        f.write(b"STGF" + struct.pack("<II", 1, len(records)))
        for name, val in records:
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            if isinstance(val, str):
                data = val.encode()
                f.write(struct.pack("<II", 1, len(data)) + data)
            else:
                arr = torch.as_tensor(val).detach().to(torch.float32).flatten().tolist()
                f.write(struct.pack("<II", 0, len(arr)) + struct.pack(f"<{len(arr)}f", *arr))


def make(fname, layers_fn, n_in, T, B, steps, loss, surr, labels, rate_reg=0.0, rate_target=0.05,
         input_rate=0.3, seed=0):
    for attempt in range(200):
        gen = torch.Generator().manual_seed(seed * 1000 + attempt)
        layers = layers_fn()
        for L, (sc, rs) in layers:
            L.init(gen, sc, rs)
        layers = [L for L, _ in layers]
        x = f32((torch.rand(T, B, n_in, generator=gen) < input_rate).to(torch.float64))
        for bi in range(B):
            x[steps[bi]:, bi] = 0
        MARGIN[0] = float("inf")
        h, spiking = x, []
        for L in layers:
            h = L.forward(h, surr)
            if L.model != "li":
                spiking.append(h)
        rates = [float(z.mean()) for z in spiking]
        if MARGIN[0] < 1e-3 or any(r < 0.05 or r > 0.6 for r in rates):
            continue
        out = h
        total = loss_fn(out, steps, labels, loss, spiking, rate_reg, rate_target)
        params = [(f"{L.name}.{k}", t) for L in layers for k, t in L.params.items()]
        grads = torch.autograd.grad(total, [t for _, t in params])
        if any(float(g.abs().max()) < 1e-5 for g in grads):
            continue  # a tensor the draw does not exercise (e.g. every max at step 0)
        cfg = ["[data]", "file = fixture", "[surrogate]", f"function = {surr[0]}",
               f"alpha = {surr[1]}", "detach_reset = yes", "[loss]", f"type = {loss}",
               f"rate_reg = {rate_reg}", f"rate_target = {rate_target}"]
        text = "\n".join(cfg) + "\n" + "".join(L.config() for L in layers)
        records = [("config", text), ("shape", torch.tensor([B, T, n_in], dtype=torch.float64)),
                   ("input", x.permute(1, 0, 2)),  # [B][T][C]
                   ("steps", torch.tensor(steps, dtype=torch.float64))]
        if loss == "ctc":
            records.append(("target_lengths", torch.tensor([len(l) for l in labels],
                                                           dtype=torch.float64)))
            records.append(("targets", torch.tensor([v for l in labels for v in l],
                                                    dtype=torch.float64)))
        else:
            records.append(("labels", torch.tensor(labels, dtype=torch.float64)))
        records.append(("loss", total.reshape(1)))
        records.append(("readout", out.permute(1, 0, 2)))
        records += [("param/" + n, t) for n, t in params]
        records += [("grad/" + n, g) for (n, _), g in zip(params, grads)]
        path = os.path.join(OUT, fname)
        write(path, records)
        print(f"{fname}: loss {float(total):.6f}, rates {[round(r, 3) for r in rates]}, "
              f"margin {MARGIN[0]:.2e}, {os.path.getsize(path)} bytes (attempt {attempt})")
        return
    sys.exit(f"{fname}: no draw without a membrane near threshold")


LIF = {"dt": 1e-3, "tau_syn_inv": 200.0, "tau_mem_inv": 100.0, "v_th": 0.5, "v_leak": 0.0,
       "v_reset": 0.0, "reset": "value"}


def main():
    os.makedirs(OUT, exist_ok=True)
    T, B = 20, 3
    steps = [20, 17, 15]
    # 1. recurrent LIF (trained rates and thresholds) -> LI read-out, ce_max, SuperSpike (Norse)
    make("train_grad_lif.bin",
         lambda: [(Layer("hid", "dense", 6, "lif", dict(LIF, neurons=10), recurrent=True,
                         train_tau=True, train_threshold=True), (6.0, 2.0)),
                  (Layer("out", "dense", 10, "li", dict(LIF, neurons=4, tau_mem_inv=50.0)),
                   (3.0, 0))],
         6, T, B, steps, "ce_max", ("superspike", 100.0), [1, 3, 0], seed=1)
    # 2. recurrent LSNN, reset by subtraction, trained rates -> LI, ce_mean, arctan
    make("train_grad_lsnn.bin",
         lambda: [(Layer("adapt", "dense", 5, "lsnn",
                         dict(LIF, neurons=8, tau_adapt_inv=50.0, beta=0.3, reset="subtract"),
                         recurrent=True, train_tau=True, train_threshold=True), (6.0, 1.5)),
                  (Layer("out", "dense", 8, "li", dict(LIF, neurons=3)), (3.0, 0))],
         5, T, B, steps, "ce_mean", ("arctan", 2.0), [2, 0, 1], seed=2)
    # 3. conv1d into CubaLIF -> LI, ce_last, fast sigmoid, rate regulariser
    make("train_grad_cuba.bin",
         lambda: [(Layer("conv", "conv1d", 12, "cubalif", dict(LIF, tau_syn_inv=300.0),
                         conv=(2, 3, 3, 1, 1), train_threshold=True), (8.0, 0)),
                  (Layer("out", "dense", 18, "li", dict(LIF, neurons=3)), (3.0, 0))],
         12, T, B, steps, "ce_last", ("fast_sigmoid", 25.0), [0, 2, 1], rate_reg=0.5,
         rate_target=0.1, seed=3)
    # 4. recurrent LIF -> LI over blank + 3 labels, CTC
    make("train_grad_ctc.bin",
         lambda: [(Layer("hid", "dense", 6, "lif", dict(LIF, neurons=12), recurrent=True),
                   (6.0, 2.0)),
                  (Layer("out", "dense", 12, "li", dict(LIF, neurons=4)), (3.0, 0))],
         6, T, B, steps, "ctc", ("superspike", 100.0), [[0, 2], [1, 1, 2], [2]], seed=4)


if __name__ == "__main__":
    main()
