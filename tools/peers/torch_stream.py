#!/usr/bin/python3
"""tools/peers/torch_stream.py - the peer of `spiketalk bench snn`'s streaming rows.

The same network as spiketalk's (Linear(n_in -> n_hidden) + LIF +
Linear(n_hidden -> n_out) + LIF, the weights and biases spiketalk drew, read
from --data) stepped one time step at a time, batch 1, the way Norse and
snnTorch run it on a CPU: torch.nn.functional.linear, then the LIF update
written with Norse's own operations (norse.torch.functional.lif,
lif_feed_forward_step: current jump, membrane decay, current decay,
heaviside, reset), under torch.no_grad() with torch.set_num_threads(1).
Norse itself is not packaged for Debian; its step is a dozen tensor
operations, reproduced here line by line.

What is timed: each step on its own (time.perf_counter_ns around the two
layers), after --warmup steps; the median over --steps steps, and with
--repeat R the smallest of R such medians (each repeat from a fresh state),
as spiketalk reports its own.
The inputs are spiketalk's input bank (--data/in_<kind>.f32, rows of n_in),
cycled. Prints one JSON object on stdout.
"""
import argparse
import json
import os
import statistics
import sys
import time


def fail(msg, code=3):
    print(json.dumps({"error": msg}))
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--n-in", type=int, default=256)
    ap.add_argument("--n-hidden", type=int, default=512)
    ap.add_argument("--n-out", type=int, default=256)
    ap.add_argument("--dt", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--inputs", default="spikes,dense",
                    help="comma-separated input kinds: files in_<kind>.f32")
    a = ap.parse_args()
    # one thread everywhere: PyTorch's own pool and the BLAS under it
    # (Debian's torch calls the system BLAS, OpenBLAS when it is installed)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import numpy as np
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        fail("cannot import torch (%s): install Debian's python3-torch" % e)
    torch.set_num_threads(1)

    def load(name, shape):
        arr = np.fromfile(os.path.join(a.data, name), dtype=np.float32)
        return torch.from_numpy(arr.reshape(shape))

    w1 = load("w1.f32", (a.n_hidden, a.n_in))
    b1 = load("b1.f32", (a.n_hidden,))
    w2 = load("w2.f32", (a.n_out, a.n_hidden))
    b2 = load("b2.f32", (a.n_out,))

    # Norse's LIFParameters defaults, dt as Norse's lif_feed_forward_step
    # takes it (a Python float times tensors)
    tau_syn_inv = torch.as_tensor(1.0 / 5e-3)
    tau_mem_inv = torch.as_tensor(1.0 / 1e-2)
    v_leak = torch.as_tensor(0.0)
    v_th = torch.as_tensor(1.0)
    v_reset = torch.as_tensor(0.0)
    dt = a.dt

    def lif_feed_forward_step(x, v, i):
        # norse/torch/functional/lif.py, lif_feed_forward_step (Norse 1.x)
        i_jump = i + x
        dv = dt * tau_mem_inv * ((v_leak - v) + i_jump)
        v_decayed = v + dv
        di = -dt * tau_syn_inv * i_jump
        i_decayed = i_jump + di
        z_new = torch.gt(v_decayed - v_th, torch.as_tensor(0.0)).to(v_decayed.dtype)
        v_new = (1 - z_new) * v_decayed + z_new * v_reset
        return z_new, v_new, i_decayed

    results = {}
    with torch.no_grad():
        for kind in a.inputs.split(","):
            bank = np.fromfile(os.path.join(a.data, "in_%s.f32" % kind), dtype=np.float32)
            bank = torch.from_numpy(bank.reshape(-1, 1, a.n_in))
            medians = []
            for _ in range(max(a.repeat, 1)):
                v1 = torch.zeros(1, a.n_hidden)
                i1 = torch.zeros(1, a.n_hidden)
                v2 = torch.zeros(1, a.n_out)
                i2 = torch.zeros(1, a.n_out)
                times = []
                spikes_hidden = spikes_out = 0
                for t in range(a.warmup + a.steps):
                    x = bank[t % bank.shape[0]]
                    t0 = time.perf_counter_ns()
                    h = torch.nn.functional.linear(x, w1, b1)
                    z1, v1, i1 = lif_feed_forward_step(h, v1, i1)
                    o = torch.nn.functional.linear(z1, w2, b2)
                    z2, v2, i2 = lif_feed_forward_step(o, v2, i2)
                    t1 = time.perf_counter_ns()
                    if t >= a.warmup:
                        times.append((t1 - t0) * 1e-3)
                        spikes_hidden += int(z1.sum())
                        spikes_out += int(z2.sum())
                medians.append(statistics.median(times))
            results[kind] = {
                "us_per_step_median": min(medians),
                "us_per_step_medians": medians,
                "steps": a.steps,
                "spikes_hidden": spikes_hidden,
                "spikes_out": spikes_out,
                "hidden_rate": spikes_hidden / (a.steps * a.n_hidden),
                "out_rate": spikes_out / (a.steps * a.n_out),
            }
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": 1,
                      "warmup": a.warmup, "results": results}))


if __name__ == "__main__":
    main()
