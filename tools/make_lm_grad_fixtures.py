#!/usr/bin/env python3
"""tools/make_lm_grad_fixtures.py - gradient fixtures for `spiketalk-tests lm_train`.

Builds a tiny SpikeGPT (and its dense RWKV-4 twin) in PyTorch (python3-torch),
written here by hand from ../shared/data/spikegpt/README.md and SpikeGPT's
src/model.py: binary embedding through spikingjelly's ATan surrogate
(alpha 2), LayerNorms, token shift, WKV, the LIF (tau 2, threshold 1, hard
reset to 0, reset in the graph as spikingjelly's detach_reset=False) with the
same ATan surrogate, the channel mix, the head, mean cross-entropy and
SpikeGPT's L2Wrap (1e-4 / tokens times the largest logit, on that logit's
gradient). It runs two chunks of T tokens for B sequences, the second from
the state the first ended with (detached), and writes the weights, tokens,
both losses and both chunks' gradients as autograd computes them, plus the
weights after one step of torch.optim.Adam (betas 0.9/0.99, eps 4e-9,
lr 6e-4) on the first chunk's gradient clipped by clip_grad_norm_(1.0):
tests/fixtures/lm_grad_spiking.bin and lm_grad_dense.bin. The C tests load
the same weights and compare; they do not need torch.

    sudo apt-get install python3-torch      # Debian 12: PyTorch 1.13
    /usr/bin/python3 tools/make_lm_grad_fixtures.py

The forward runs in float64 on weights that are exact float32 values. The
script redraws the weights until no LIF charge is within 1e-3 of the
threshold and no embedding value within 1e-3 of 0, so the float32 forward in
C takes the same spike decisions; gradients then agree to ~1e-5 relative.

File format (little-endian), as tools/make_grad_fixtures.py: b"STGF",
u32 version (1), u32 count, then per record: u32 name length, name bytes,
u32 type (0: float32, 1: text, 2: int32), u32 element count, the elements.
"""
import math
import os
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit("make_lm_grad_fixtures.py needs PyTorch: sudo apt-get install python3-torch "
             "(and run it with /usr/bin/python3)")

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

L, D, F, V, T, B = 2, 6, 12, 9, 10, 2
ALPHA = 2.0
LOGIT_L2 = 1e-4
MARGIN = [float("inf")]


class ATan(torch.autograd.Function):
    """spikingjelly's surrogate.ATan: forward heaviside (x >= 0), backward
    (alpha/2) / (1 + (pi/2 alpha x)^2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (ALPHA / 2) / (1 + (math.pi / 2 * ALPHA * x) ** 2)


def spike(u):
    MARGIN[0] = min(MARGIN[0], float(u.detach().abs().min()))
    return ATan.apply(u)


class L2Wrap(torch.autograd.Function):
    """SpikeGPT's: the loss unchanged, plus 1e-4/(B T) max logit on each
    row's largest logit in the backward."""

    @staticmethod
    def forward(ctx, loss, y):
        ctx.save_for_backward(y)
        return loss

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        factor = LOGIT_L2 / (y.shape[0] * y.shape[1])
        maxx, ids = torch.max(y, -1, keepdim=True)
        gy = torch.zeros_like(y)
        gy.scatter_(-1, ids, maxx * factor)
        return g, gy


def names():
    n = ["emb.weight"]
    for i in range(L):
        p = "blocks.%d." % i
        n += [p + "ln1.weight", p + "ln1.bias", p + "ln2.weight", p + "ln2.bias"]
        if i == 0:
            n += [p + "ln0.weight", p + "ln0.bias"]
        n += [p + s for s in ("att.time_decay", "att.time_first", "att.time_mix_k",
                              "att.time_mix_v", "att.time_mix_r", "att.key.weight",
                              "att.value.weight", "att.receptance.weight", "att.output.weight",
                              "ffn.time_mix_k", "ffn.time_mix_r", "ffn.key.weight",
                              "ffn.receptance.weight", "ffn.value.weight")]
    return n + ["ln_out.weight", "ln_out.bias", "head.weight"]


def shape(name):
    if name == "emb.weight":
        return (V, D)
    if name == "head.weight":
        return (V, D)
    if "time_mix" in name:
        return (1, 1, D)
    if name.endswith("ffn.key.weight"):
        return (F, D)
    if name.endswith("ffn.value.weight"):
        return (D, F)
    if name.endswith(".weight") and ("att." in name or "ffn." in name):
        return (D, D)
    return (D,)


def f32(x):
    return x.to(torch.float32).to(torch.float64)


def make_weights(gen, out_scale):
    w = {}
    for n in names():
        s = shape(n)
        if n.endswith("ln0.weight") or n.endswith("ln1.weight") or n.endswith("ln2.weight") \
                or n == "ln_out.weight":
            t = 1 + 0.2 * torch.randn(s, generator=gen)
        elif "bias" in n:
            t = 0.2 * torch.randn(s, generator=gen)
        elif "time_decay" in n:
            t = -1 + torch.randn(s, generator=gen)
        elif "time_first" in n:
            t = math.log(0.3) + 0.5 * torch.randn(s, generator=gen)
        elif "time_mix" in n:
            t = torch.rand(s, generator=gen)
        elif n == "emb.weight":
            t = torch.randn(s, generator=gen)
        else:
            fan_in = s[1]
            t = (torch.rand(s, generator=gen) * 2 - 1) / math.sqrt(fan_in)
            if n.endswith("att.output.weight") or n.endswith("ffn.value.weight"):
                t = t * out_scale
        w[n] = f32(t).requires_grad_(True)
    return w


def ln(x, g, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * g + b


def shift(a, prev):
    """a [T, D], prev [D] -> the previous token's row for each t"""
    return torch.cat([prev.unsqueeze(0), a[:-1]], 0)


def fresh_state():
    return {"a": [torch.zeros(D) for _ in range(L)], "f": [torch.zeros(D) for _ in range(L)],
            "A": [torch.zeros(D) for _ in range(L)], "B": [torch.zeros(D) for _ in range(L)],
            "p": [torch.full((D,), -1e30) for _ in range(L)],
            "m1": [torch.zeros(D) for _ in range(L)], "m2": [torch.zeros(D) for _ in range(L)]}


def wkv(k, v, u, w, A, Bs, p):
    """The README's recurrence in the scaled form, per token; returns y and
    the state after (autograd differentiates it as written)."""
    ys = []
    for t in range(k.shape[0]):
        kk, vv = k[t], v[t]
        q = torch.maximum(p, u + kk)
        e1, e2 = torch.exp(p - q), torch.exp(u + kk - q)
        ys.append((e1 * A + e2 * vv) / (e1 * Bs + e2))
        q2 = torch.maximum(p + w, kk)
        e1, e2 = torch.exp(p + w - q2), torch.exp(kk - q2)
        A = e1 * A + e2 * vv
        Bs = e1 * Bs + e2
        p = q2
    return torch.stack(ys), A, Bs, p


def lif(c, m, spiking):
    if not spiking:
        return c, m
    out = []
    for t in range(c.shape[0]):
        h = m + (c[t] - m) / 2
        s = spike(h - 1)
        m = h * (1 - s)  # hard reset to 0, in the graph
        out.append(s)
    return torch.stack(out), m


def forward_seq(w, tok, st, spiking):
    """tok [T + 1] -> summed loss terms need logits [T, V]; state updated (detached copy)"""
    E = w["emb.weight"][tok[:-1]]
    e = spike(E) if spiking else E
    x = ln(e, w["blocks.0.ln0.weight"], w["blocks.0.ln0.bias"])
    new = {k: list(v) for k, v in st.items()}
    for i in range(L):
        p = "blocks.%d." % i
        a = ln(x, w[p + "ln1.weight"], w[p + "ln1.bias"])
        aa = shift(a, st["a"][i])
        mk, mv, mr = (w[p + "att.time_mix_" + c].view(D) for c in "kvr")
        xk, xv, xr = a * mk + aa * (1 - mk), a * mv + aa * (1 - mv), a * mr + aa * (1 - mr)
        k = xk @ w[p + "att.key.weight"].T
        v = xv @ w[p + "att.value.weight"].T
        r = xr @ w[p + "att.receptance.weight"].T
        y, A, Bs, pp = wkv(k, v, w[p + "att.time_first"], -torch.exp(w[p + "att.time_decay"]),
                           st["A"][i], st["B"][i], st["p"][i])
        o = (torch.sigmoid(r) * y) @ w[p + "att.output.weight"].T
        s1, m1 = lif(o, st["m1"][i], spiking)
        x = x + s1
        f = ln(x, w[p + "ln2.weight"], w[p + "ln2.bias"])
        ff = shift(f, st["f"][i])
        fk, fr = (w[p + "ffn.time_mix_" + c].view(D) for c in "kr")
        xk, xr = f * fk + ff * (1 - fk), f * fr + ff * (1 - fr)
        hk = torch.relu(xk @ w[p + "ffn.key.weight"].T) ** 2
        kv = hk @ w[p + "ffn.value.weight"].T
        o2 = torch.sigmoid(xr @ w[p + "ffn.receptance.weight"].T) * kv
        s2, m2 = lif(o2, st["m2"][i], spiking)
        x = x + s2
        new["a"][i], new["f"][i] = a[-1].detach(), f[-1].detach()
        new["A"][i], new["B"][i], new["p"][i] = A.detach(), Bs.detach(), pp.detach()
        new["m1"][i], new["m2"][i] = m1.detach(), m2.detach()
    logits = ln(x, w["ln_out.weight"], w["ln_out.bias"]) @ w["head.weight"].T
    return logits, new


def chunk(w, toks, states, spiking):
    logits, new = [], []
    for b in range(B):
        lg, ns = forward_seq(w, toks[b], states[b], spiking)
        logits.append(lg)
        new.append(ns)
    y = torch.stack(logits)  # [B, T, V]
    tgt = torch.stack([t[1:] for t in toks])
    loss = torch.nn.functional.cross_entropy(y.reshape(-1, V), tgt.reshape(-1))
    return L2Wrap.apply(loss, y), new


def grads(w, loss):
    for t in w.values():
        t.grad = None
    loss.backward()
    return {n: t.grad.detach().clone() for n, t in w.items()}


def write(path, records):
    with open(path, "wb") as f:
        f.write(b"STGF" + struct.pack("<II", 1, len(records)))
        for name, kind, data in records:
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            if kind == 1:
                b = data.encode()
                f.write(struct.pack("<II", 1, len(b)) + b)
            elif kind == 2:
                f.write(struct.pack("<II", 2, len(data)) + struct.pack("<%di" % len(data), *data))
            else:
                vals = [float(x) for x in data]
                f.write(struct.pack("<II", 0, len(vals)) + struct.pack("<%df" % len(vals), *vals))


def make(spiking, seed):
    for attempt in range(200):
        gen = torch.Generator().manual_seed(seed + attempt)
        w = make_weights(gen, 4.0)
        toks = [torch.randint(0, V, (2 * T + 1,), generator=gen) for _ in range(B)]
        MARGIN[0] = float("inf")
        st0 = [fresh_state() for _ in range(B)]
        loss1, st1 = chunk(w, [t[:T + 1] for t in toks], st0, spiking)
        loss2, _ = chunk(w, [t[T:] for t in toks], st1, spiking)
        if not spiking or MARGIN[0] >= 1e-3:
            break
    else:
        sys.exit("no draw keeps every charge 1e-3 away from the threshold")
    rate = None
    g1 = grads(w, loss1)
    # the second chunk's graph is separate (the carried state is detached)
    loss2, _ = chunk(w, [t[T:] for t in toks], st1, spiking)
    g2 = grads(w, loss2)
    # one Adam step on the first chunk's gradient, clipped
    before = {n: t.detach().clone() for n, t in w.items()}
    for n, t in w.items():
        t.grad = g1[n].clone()
    torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
    opt = torch.optim.Adam(list(w.values()), lr=6e-4, betas=(0.9, 0.99), eps=4e-9)
    opt.step()
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in g1.values()))
    recs = [("config", 1, "n_layer %d n_embd %d vocab %d n_ffn %d seq_len %d batch %d spiking %d "
             "alpha %g logit_l2 %g margin %.3g" % (L, D, V, F, T, B, int(spiking), ALPHA,
                                                   LOGIT_L2, MARGIN[0])),
            ("tokens", 2, [int(x) for t in toks for x in t]),
            ("loss1", 0, [float(loss1)]), ("loss2", 0, [float(loss2)]),
            ("grad_norm1", 0, [norm])]
    for n in names():
        recs.append(("w/" + n, 0, before[n].flatten().tolist()))
    for n in names():
        recs.append(("g1/" + n, 0, g1[n].flatten().tolist()))
    for n in names():
        recs.append(("g2/" + n, 0, g2[n].flatten().tolist()))
    for n in names():
        recs.append(("adam/" + n, 0, w[n].detach().flatten().tolist()))
    path = os.path.join(OUT, "lm_grad_%s.bin" % ("spiking" if spiking else "dense"))
    write(path, recs)
    print("%s: loss %.6f / %.6f, |g| %.4f, margin %.3g, %d bytes" % (
        os.path.basename(path), float(loss1), float(loss2), norm, MARGIN[0],
        os.path.getsize(path)))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make(True, 1)
    make(False, 101)
