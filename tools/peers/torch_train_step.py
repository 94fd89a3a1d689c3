#!/usr/bin/python3
"""tools/peers/torch_train_step.py - the peer of `spiketalk bench train`.

One training step of the same recurrent LIF network as spiketalk's bench,
written by hand in PyTorch the way Norse computes it on a CPU: inputs
[T, B, n_in] of Poisson spikes; a Linear(n_in -> n_hidden) over all steps at
once, then per step the recurrent LIF update with Norse's operations and
order (current jump by W x + R z(t-1), membrane decay, current decay,
SuperSpike heaviside with alpha = 100, reset by value with the spike
detached), and a leaky-integrator read-out (Norse's LI) of n_out neurons;
cross-entropy on the read-out's maximum over time (Norse's decode); then
loss.backward() and an Adam step. Norse itself is not packaged for Debian;
its LIF step is the dozen tensor operations below.

    sudo apt-get install python3-torch      # Debian 12: PyTorch 1.13
    /usr/bin/python3 tools/peers/torch_train_step.py --threads 1

What is timed: each whole step (zero_grad, forward, loss, backward, Adam)
with time.perf_counter_ns (wall) and time.process_time_ns (CPU), after
--warmup steps; the medians over --steps are reported, with the hidden layer's firing rate. torch.set_num_threads and the
BLAS thread variables are set to --threads. Prints one JSON object.
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
    ap.add_argument("--inputs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--outputs", type=int, default=12)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--input-rate", type=float, default=0.1)
    ap.add_argument("--init-scale", type=float, default=4.0)
    ap.add_argument("--rec-scale", type=float, default=1.0)
    a = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        fail("cannot import torch (%s): sudo apt-get install python3-torch" % e)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)

    class SuperSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u > 0).to(u.dtype)

        @staticmethod
        def backward(ctx, g):
            (u,) = ctx.saved_tensors
            return g / (100.0 * u.abs() + 1.0) ** 2

    spike = SuperSpike.apply
    n_in, n, K, T, B = a.inputs, a.hidden, a.outputs, a.time, a.batch
    # spiketalk's initialisation: uniform in +-scale/sqrt(fan_in), zero biases
    w_in = torch.nn.Parameter((torch.rand(n_in, n) * 2 - 1) * a.init_scale / n_in ** 0.5)
    b_in = torch.nn.Parameter(torch.zeros(n))
    w_rec = torch.nn.Parameter((torch.rand(n, n) * 2 - 1) * a.rec_scale / n ** 0.5)
    w_out = torch.nn.Parameter((torch.rand(n, K) * 2 - 1) / n ** 0.5)
    b_out = torch.nn.Parameter(torch.zeros(K))
    params = [w_in, b_in, w_rec, w_out, b_out]
    opt = torch.optim.Adam(params, lr=1e-3)
    dt, a_mem, a_syn = 1e-3, 1e-3 * 100.0, 1e-3 * 200.0
    x = (torch.rand(T, B, n_in) < a.input_rate).float()
    labels = torch.randint(0, K, (B,))
    rate = [0.0]

    def step():
        opt.zero_grad()
        ff = x @ w_in + b_in                       # all steps at once
        v = torch.zeros(B, n)
        i = torch.zeros(B, n)
        z = torch.zeros(B, n)
        spikes = 0.0
        zs = []
        for t in range(T):
            c = ff[t] + z @ w_rec if t > 0 else ff[t]
            i_jump = i + c                          # Norse lif_feed_forward_step
            v_dec = v + a_mem * ((0.0 - v) + i_jump)
            i = i_jump - a_syn * i_jump
            z = spike(v_dec - 1.0)
            zd = z.detach()
            v = (1 - zd) * v_dec + zd * 0.0
            zs.append(z)
        zs = torch.stack(zs)
        spikes = float(zs.detach().mean())
        fo = zs @ w_out + b_out                     # read-out: Norse's li_step
        vo = torch.zeros(B, K)
        io = torch.zeros(B, K)
        ys = []
        for t in range(T):
            ij = io + fo[t]
            vo = vo + a_mem * ((0.0 - vo) + ij)
            io = ij - a_syn * ij
            ys.append(vo)
        logits = torch.stack(ys).max(0).values
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        opt.step()
        rate[0] = spikes
        return float(loss)

    for _ in range(a.warmup):
        step()
    times, cpu = [], []
    for _ in range(a.steps):
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        step()
        times.append((time.perf_counter_ns() - t0) / 1e6)
        cpu.append((time.process_time_ns() - c0) / 1e6)
    print(json.dumps({
        "peer": "pytorch",
        "torch_version": torch.__version__,
        "threads": a.threads,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "median_cpu_ms": statistics.median(cpu),
        "steps": a.steps,
        "hidden_rate": rate[0],
    }))


if __name__ == "__main__":
    main()
