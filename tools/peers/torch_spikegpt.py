#!/usr/bin/python3
"""tools/peers/torch_spikegpt.py - the PyTorch peer of `spiketalk bench lm`.

The same SpikeGPT model as spiketalk's (../shared/data/spikegpt/README.md:
RWKV-4 with a binary embedding and a LIF neuron on each sub-block's output,
tau 2, threshold 1, hard reset), the weights spiketalk drew, read from the
reference-format model.bin it wrote (--model), run token by token (the RNN
mode, the way the reference generates) under torch.no_grad() with
torch.set_num_threads(1): LayerNorm and the matrix-vector products through
torch.nn.functional, the WKV and LIF updates as tensor operations, the full
state (token shifts, A, B, p, both membranes) carried between tokens. What
spiketalk precomputes at load (w = -exp(time_decay), 1 - mix) is
precomputed here too.

What is timed (time.perf_counter):
  tokens/s     --tokens tokens from --token-file fed one by one with logits,
               after --warmup tokens, median of --repeat passes
  first token  from a fresh state, the --prompt-len first tokens fed one by
               one, then the argmax of the last logits: p50 and p95 of
               --ttft-repeat runs
It also reports the logits after the first token (fresh state) and after the
last timed token, so spiketalk can check that both ran the same model.
Prints one JSON object on stdout; on failure {"error": ...} and exit 3.
"""
import argparse
import json
import os
import struct
import sys
import time


def fail(msg, code=3):
    print(json.dumps({"error": msg}))
    sys.exit(code)


def load(path):
    import torch
    with open(path, "rb") as f:
        d = f.read()
    if len(d) < 24:
        fail("%s: truncated" % path)
    magic, ver, L, D, V, n = struct.unpack_from("<6i", d, 0)
    if magic != 0x54475053 or ver != 1:
        fail("%s: not a SpikeGPT model.bin" % path)
    o = 24
    w = {}
    for _ in range(n):
        nd, nl = struct.unpack_from("<2i", d, o)
        o += 8
        dims = struct.unpack_from("<%di" % nd, d, o)
        o += 4 * nd
        name = d[o:o + nl].decode()
        o += nl
        cnt = 1
        for x in dims:
            cnt *= x
        w[name] = torch.frombuffer(bytearray(d[o:o + 4 * cnt]), dtype=torch.float32).reshape(dims)
        o += 4 * cnt
    return L, D, V, w


class SpikeGPT:
    def __init__(self, L, D, V, w):
        import torch
        self.t = torch
        self.L, self.D, self.V = L, D, V
        self.w = w
        self.blocks = []
        for i in range(L):
            p = "blocks.%d." % i
            g = lambda k: w[p + k]
            self.blocks.append(dict(
                ln1=(g("ln1.weight"), g("ln1.bias")), ln2=(g("ln2.weight"), g("ln2.bias")),
                decay=-torch.exp(g("att.time_decay")), first=g("att.time_first"),
                amk=g("att.time_mix_k").reshape(D), amv=g("att.time_mix_v").reshape(D),
                amr=g("att.time_mix_r").reshape(D),
                omk=1 - g("att.time_mix_k").reshape(D), omv=1 - g("att.time_mix_v").reshape(D),
                omr=1 - g("att.time_mix_r").reshape(D),
                Wk=g("att.key.weight"), Wv=g("att.value.weight"),
                Wr=g("att.receptance.weight"), Wo=g("att.output.weight"),
                fmk=g("ffn.time_mix_k").reshape(D), fmr=g("ffn.time_mix_r").reshape(D),
                fomk=1 - g("ffn.time_mix_k").reshape(D), fomr=1 - g("ffn.time_mix_r").reshape(D),
                Fk=g("ffn.key.weight"), Fr=g("ffn.receptance.weight"), Fv=g("ffn.value.weight")))
        self.ln0 = (w["blocks.0.ln0.weight"], w["blocks.0.ln0.bias"])
        self.lnout = (w["ln_out.weight"], w["ln_out.bias"])
        self.emb, self.head = w["emb.weight"], w["head.weight"]

    def fresh_state(self):
        t, D = self.t, self.D
        s = []
        for _ in range(self.L):
            s.append([t.zeros(D), t.zeros(D), t.zeros(D), t.zeros(D), t.full((D,), -1e30),
                      t.zeros(D), t.zeros(D)])
        return s

    def step(self, tok, s):
        t = self.t
        F = t.nn.functional
        D = self.D
        x = F.layer_norm((self.emb[tok] >= 0).float(), (D,), self.ln0[0], self.ln0[1], 1e-5)
        for i, b in enumerate(self.blocks):
            st = s[i]
            a = F.layer_norm(x, (D,), b["ln1"][0], b["ln1"][1], 1e-5)
            xk = a * b["amk"] + st[0] * b["omk"]
            xv = a * b["amv"] + st[0] * b["omv"]
            xr = a * b["amr"] + st[0] * b["omr"]
            st[0] = a
            r = t.sigmoid(F.linear(xr, b["Wr"]))
            k = F.linear(xk, b["Wk"])
            v = F.linear(xv, b["Wv"])
            aa, bb, pp = st[2], st[3], st[4]
            ww = b["first"] + k
            q = t.maximum(pp, ww)
            e1 = t.exp(pp - q)
            e2 = t.exp(ww - q)
            wkv = (e1 * aa + e2 * v) / (e1 * bb + e2)
            ww = pp + b["decay"]
            q = t.maximum(ww, k)
            e1 = t.exp(ww - q)
            e2 = t.exp(k - q)
            st[2] = e1 * aa + e2 * v
            st[3] = e1 * bb + e2
            st[4] = q
            c = F.linear(r * wkv, b["Wo"])
            h = st[5] + (c - st[5]) / 2
            spk = (h >= 1).float()
            st[5] = h * (1 - spk)
            x = x + spk
            f = F.layer_norm(x, (D,), b["ln2"][0], b["ln2"][1], 1e-5)
            xk = f * b["fmk"] + st[1] * b["fomk"]
            xr = f * b["fmr"] + st[1] * b["fomr"]
            st[1] = f
            kk = t.square(t.relu(F.linear(xk, b["Fk"])))
            c = t.sigmoid(F.linear(xr, b["Fr"])) * F.linear(kk, b["Fv"])
            h = st[6] + (c - st[6]) / 2
            spk = (h >= 1).float()
            st[6] = h * (1 - spk)
            x = x + spk
        return F.linear(F.layer_norm(x, (D,), self.lnout[0], self.lnout[1], 1e-5), self.head)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--ttft-repeat", type=int, default=20)
    a = ap.parse_args()
    # one thread everywhere: PyTorch's own pool and the BLAS under it
    # (Debian's torch calls the system BLAS, OpenBLAS when it is installed)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import torch
    except ImportError as e:
        fail("PyTorch is not installed (apt-get install python3-torch): %s" % e)
    torch.set_num_threads(1)
    L, D, V, w = load(a.model)
    with open(a.token_file, "rb") as f:
        raw = f.read()
    toks = list(struct.unpack("<%di" % (len(raw) // 4), raw))
    if len(toks) < max(a.tokens, a.prompt_len, a.warmup, 1):
        fail("%s holds %d tokens, fewer than asked" % (a.token_file, len(toks)))
    m = SpikeGPT(L, D, V, w)
    with torch.no_grad():
        first = m.step(toks[0], m.fresh_state())
        s = m.fresh_state()
        for tok in toks[:a.warmup]:
            m.step(tok, s)
        passes = []
        last = None
        for _ in range(a.repeat):
            s = m.fresh_state()
            t0 = time.perf_counter()
            for tok in toks[:a.tokens]:
                last = m.step(tok, s)
            passes.append(time.perf_counter() - t0)
        ttft = []
        for _ in range(a.ttft_repeat):
            t0 = time.perf_counter()
            s = m.fresh_state()
            for tok in toks[:a.prompt_len]:
                lg = m.step(tok, s)
            int(torch.argmax(lg))
            ttft.append(time.perf_counter() - t0)
    passes.sort()
    ttft.sort()
    med = passes[len(passes) // 2]
    pct = lambda v, q: v[min(len(v) - 1, int(q * len(v)))]
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_layer": L, "n_embd": D, "vocab": V,
        "tokens": a.tokens,
        "tokens_per_s": a.tokens / med,
        "ttft_p50_ms": 1e3 * pct(ttft, 0.5),
        "ttft_p95_ms": 1e3 * pct(ttft, 0.95),
        "first_logits": [float(x) for x in first],
        "last_logits": [float(x) for x in last],
    }))


if __name__ == "__main__":
    main()
