#!/usr/bin/python3
"""tools/peers/asr_gru.py - the dense peer of the spiking word recognizer: a GRU on the same features and split.

What it is: a 2-layer GRU classifier (hidden 128 by default, about 166k
parameters) trained in PyTorch on exactly the inputs the spiking recognizer
(snn/asr.h, models/asr.stm) sees: 40 log-mel channels every 10 ms from the
front end of audio/audio.h (spiketalk.asr.Recognizer.features, the C
library through the Python binding), of a 1-s window built the way
`spiketalk eval` builds it (a shorter clip centred, the loudest second of a
longer one, the same tiny dither), normalised per channel by the training
set's mean and std. Read-out: a linear layer on the top layer's outputs
averaged over time (--pool last: the last state).

What is compared: the held-out figures of models/README.md on the same data
and split as tools/asr_tool.c `data` makes them: Speech Commands speakers
hashed with FNV-1a mod 10 (0-1 test: 425 clips, 2 validation, the rest
training; `_silence_` clips hashed by their path, the training ones being
the noise bank and, at random levels, the silence class); FSDD speakers
george, jackson, nicolas for training (half of the takes: a seeded draw,
asr_tool's own draw depends on its generator's state and cannot be
replayed), lucas held out (500 clips). Classes: `_silence_`, `_unknown_`,
the 10 digits and the 10 Speech Commands words (Speech Commands' other
words are `_unknown_`, its digits their own class, as class_of() in
asr_tool.c). Scores as cli/cmd_asr.c: SC12 maps a recognized digit (any
word outside the 10) to `_unknown_`; an FSDD clip is right when the best
class other than `_silence_` is its digit (st_asr_best_speech).
No synthetic speech: the recognizer trained on Speech Commands + FSDD alone
is the like-for-like figure (74.8 % / 72.6 %; 75.8 % / 71.0 % shipped).

Training: Adam (lr 2e-3, cosine to 1e-4), batch 32, gradient norm clipped
at 1, cross-entropy; every epoch each training clip once, randomly placed in
the window (a time shift), and with p 0.5 a random peak gain (-30..-1 dBFS)
plus, with p 0.7, a training `_silence_` clip at 0-25 dB SNR (asr_tool's
formula); the silence class is two noise clips per noise-bank clip at
-40..+10 dB each epoch. The epoch with the best validation accuracy is kept
and tested. Seeded and deterministic for a given --seed and --threads.

    sudo apt-get install python3-torch python3-numpy    # Debian 12: PyTorch 1.13
    make                                                # build/libspiketalk.so
    nice -n 5 /usr/bin/python3 tools/peers/asr_gru.py --sc-only   # the issue's calibration
    nice -n 5 /usr/bin/python3 tools/peers/asr_gru.py             # + the FSDD training takes

Progress per epoch goes to stderr; one JSON object to stdout (params,
epochs, counts, sc12_accuracy, fsdd_accuracy, per-class SC12 accuracy, CPU
seconds). Exit 2 when --data has no Speech Commands, 3 when torch or the
library cannot be loaded.
"""
import argparse
import json
import math
import os
import sys
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLIP = 16000  # 1 s at 16 kHz, the window of asr_tool.c and cli_asr_clip_features
SC_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CLASSES = ["_silence_", "_unknown_"] + DIGITS + SC_WORDS  # the recognizer's order, first 22
SC12 = SC_WORDS + ["_unknown_", "_silence_"]


def fail(msg, code=3):
    print(json.dumps({"error": msg}))
    sys.exit(code)


def fnv1a(s):
    """hash_str() of tools/asr_tool.c: 32-bit FNV-1a over the bytes."""
    h = 2166136261
    for b in s.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def class_of(word):
    return CLASSES.index(word) if word in CLASSES[2:] else 1


def eval_dither():
    """The fixed dither of cli_asr_clip_features (xorshift64 from 0x2545F4914F6CDD1D)."""
    import numpy as np
    s, m, out = 0x2545F4914F6CDD1D, (1 << 64) - 1, []
    for _ in range(CLIP):
        s ^= (s << 13) & m
        s ^= s >> 7
        s ^= (s << 17) & m
        out.append(((s >> 11) / 9007199254740992.0 - 0.5) * 2e-4)
    return np.array(out, dtype=np.float32)


def loudest_offset(x):
    """Start of the loudest second of x (step 800, every 4th sample), as the C code."""
    import numpy as np
    sq = x.astype(np.float64) ** 2
    best, best_e = 0, -1.0
    for o in range(0, len(x) - CLIP + 1, 800):
        e = sq[o:o + CLIP:4].sum()
        if e > best_e:
            best, best_e = o, e
    return best


def window(x, dither, offset=None):
    """x placed in a 1-s window over the dither: a longer clip's loudest second,
    a shorter one at offset (None: centred)."""
    buf = dither.copy()
    if len(x) > CLIP:
        o = loudest_offset(x)
        buf += x[o:o + CLIP]
    else:
        off = (CLIP - len(x)) // 2 if offset is None else offset
        buf[off:off + len(x)] += x
    return buf


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\r\n").split("\t") for line in f]
    return [r + [""] * (4 - len(r)) for r in rows[1:] if r and r[0]]


def load_data(a, asr, log):
    """The split of asr_tool.c `data`: lists of (samples16k, class, extra) per set."""
    import numpy as np
    sc_dir = os.path.join(a.data, "speech", "speech_commands")
    fs_dir = os.path.join(a.data, "speech", "fsdd")

    def read16k(path):
        x, rate = asr.read_audio(path)
        return asr.resample(x, rate, 16000) if rate != 16000 else x

    d = {"train": [], "valid": [], "noise": [], "test_sc": [], "test_fsdd": []}
    for rel, label12, word, spk in read_tsv(os.path.join(sc_dir, "manifest.tsv")):
        path = os.path.join(sc_dir, rel)
        if not os.path.exists(path):
            continue
        sil = label12 == "_silence_"
        h = fnv1a(rel if sil else (spk or rel)) % 10
        split = "test" if h < 2 else "valid" if h == 2 else "train"
        x = read16k(path)
        if split == "test":
            d["test_sc"].append((x, label12, rel))
        elif sil:
            d["noise" if split == "train" else "valid"].append((x, 0, rel))
        else:
            d[split].append((x, class_of(word or label12), rel))
    n_sc = len(d["train"])
    rng = np.random.RandomState(a.seed + 7)
    fs_manifest = os.path.join(fs_dir, "manifest.tsv")
    n_fs_seen = 0
    if os.path.exists(fs_manifest):
        for rel, text, spk, _ in read_tsv(fs_manifest):
            path = os.path.join(fs_dir, rel)
            if spk == "lucas":
                d["test_fsdd"].append((read16k(path), class_of(text), rel))
            elif not a.sc_only:
                n_fs_seen += 1
                if rng.randint(2) == 0:  # half the takes, as asr_tool
                    d["train"].append((read16k(path), class_of(text), rel))
    log("data: speech commands %d train clips, %d noise clips, %d valid, %d test; "
        "fsdd %d of %d train takes, %d test (lucas)"
        % (n_sc, len(d["noise"]), len(d["valid"]), len(d["test_sc"]),
           len(d["train"]) - n_sc, n_fs_seen, len(d["test_fsdd"])))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.normpath(os.path.join(REPO, "..", "shared", "data")))
    ap.add_argument("--model", default=os.path.join(REPO, "models", "asr.stm"),
                    help="the recognizer whose front end makes the features")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--pool", choices=("mean", "last"), default="mean")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--specaug", type=int, nargs=2, default=(0, 0), metavar=("F", "T"),
                    help="SpecAugment: two frequency masks of up to F channels and two time "
                         "masks of up to T frames on each training example (0 0: off)")
    ap.add_argument("--cmn", action="store_true",
                    help="subtract each clip's own mean per channel (after the global normalisation)")
    ap.add_argument("--sc-only", action="store_true",
                    help="train on Speech Commands alone (the issue's calibration figure)")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.data, "speech", "speech_commands", "manifest.tsv")):
        print("asr_gru: no Speech Commands under %s (speech/speech_commands/manifest.tsv): "
              "give --data DIR, the shared data folder" % a.data, file=sys.stderr)
        fail("no data: %s/speech/speech_commands/manifest.tsv" % a.data, 2)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    try:
        import numpy as np
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
        fail("cannot import torch/numpy (%s): sudo apt-get install python3-torch" % e)
    sys.path.insert(0, os.path.join(REPO, "bindings", "python"))
    try:
        from spiketalk import asr
        rec = asr.Recognizer.load(a.model)
    except Exception as e:  # noqa: BLE001 - library or model missing
        fail("cannot load the recognizer's front end (%s): run make (build/libspiketalk.so) "
             "or set SPIKETALK_LIB" % e)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    t_wall, t_cpu = time.time(), time.process_time()

    def log(msg):
        print("asr_gru: " + msg, file=sys.stderr, flush=True)

    d = load_data(a, asr, log)
    dither0 = eval_dither()

    def feats(buf):
        f, _ = rec.features(buf)
        return f

    # clean features as eval sees them: the normalisation, validation and test sets
    clean_train = [feats(window(x, dither0)) for x, _, _ in d["train"]]
    clean_train += [feats(window(x, dither0)) for x, _, _ in d["noise"]]
    allf = np.concatenate(clean_train)
    mean = allf.mean(0).astype(np.float32)
    std = np.maximum(allf.std(0), 1e-3).astype(np.float32)
    n_frames = clean_train[0].shape[0]

    def stack(rows):
        z = (np.stack(rows) - mean) / std
        if a.cmn:
            z = z - z.mean(1, keepdims=True)
        return torch.from_numpy(z.astype(np.float32))

    def spec_augment(x):
        """Masks (set to 0, the normalised mean) on a batch, in place."""
        fmax, tmax = a.specaug
        for i in range(x.shape[0]):
            for _ in range(2):
                if fmax:
                    w = rng.randint(fmax + 1)
                    f0 = rng.randint(x.shape[2] - w + 1)
                    x[i, :, f0:f0 + w] = 0
                if tmax:
                    w = rng.randint(tmax + 1)
                    t0 = rng.randint(x.shape[1] - w + 1)
                    x[i, t0:t0 + w, :] = 0
        return x

    xv = stack([feats(window(x, dither0)) for x, _, _ in d["valid"]])
    yv = torch.tensor([c for _, c, _ in d["valid"]])
    xs = stack([feats(window(x, dither0)) for x, _, _ in d["test_sc"]])
    ls = [SC12.index(lab) for _, lab, _ in d["test_sc"]]
    xf = stack([feats(window(x, dither0)) for x, _, _ in d["test_fsdd"]])
    yf = torch.tensor([c for _, c, _ in d["test_fsdd"]])
    log("features: %d frames x %d mels per clip; %.1f s" % (n_frames, allf.shape[1], time.time() - t_wall))

    rng = np.random.RandomState(a.seed)
    noise = [x for x, _, _ in d["noise"]]
    noise_pow = [float((x.astype(np.float64) ** 2).mean()) + 1e-12 for x in noise]

    def augmented(x):
        dither = ((rng.random_sample(CLIP) - 0.5) * 2e-4).astype(np.float32)
        y = x.astype(np.float32)
        if rng.random_sample() < 0.5:
            y = y * np.float32(10 ** (rng.uniform(-30, -1) / 20) / max(np.abs(y).max(), 1e-9))
            if rng.random_sample() < 0.7:
                k = rng.randint(len(noise))
                nz = noise[k]
                p = float((y.astype(np.float64) ** 2).mean())
                amp = math.sqrt(p * 3 / noise_pow[k] / 10 ** (rng.uniform(0, 25) / 10))
                idx = (rng.randint(len(nz)) + np.arange(len(y))) % len(nz)
                y = y + np.float32(amp) * nz[idx]
        off = rng.randint(CLIP - len(y) + 1) if len(y) <= CLIP else None
        return window(y, dither, off)

    def silence_example(nz):
        dither = ((rng.random_sample(CLIP) - 0.5) * 2e-4).astype(np.float32)
        g = np.float32(10 ** (rng.uniform(-40, 10) / 20))
        if len(nz) > CLIP:
            o = rng.randint(len(nz) - CLIP + 1)
            return dither + g * nz[o:o + CLIP]
        return window(g * nz, dither, rng.randint(CLIP - len(nz) + 1))

    def epoch_data():
        rows, labels = [], []
        for x, c, _ in d["train"]:
            rows.append(feats(augmented(x)))
            labels.append(c)
        for nz in noise:
            for _ in range(2):
                rows.append(feats(silence_example(nz)))
                labels.append(0)
        return stack(rows), torch.tensor(labels)

    class GRUNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(allf.shape[1], a.hidden, num_layers=a.layers, batch_first=True,
                                    dropout=0.1 if a.layers > 1 else 0.0)
            self.out = torch.nn.Linear(a.hidden, len(CLASSES))

        def forward(self, x):
            h, _ = self.gru(x)
            return self.out(h.mean(1) if a.pool == "mean" else h[:, -1])

    net = GRUNet()
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    steps_per_epoch = (len(d["train"]) + 2 * len(noise) + a.batch - 1) // a.batch
    total = max(1, a.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    lossf = torch.nn.CrossEntropyLoss()

    def predict(x):
        net.eval()
        with torch.no_grad():
            return torch.cat([net(x[i:i + 256]) for i in range(0, len(x), 256)])

    log("GRU %d x %d, %d parameters, %d classes; %d training samples an epoch"
        % (a.layers, a.hidden, n_params, len(CLASSES), len(d["train"]) + 2 * len(noise)))
    best, best_epoch, best_state = -1.0, 0, None
    for ep in range(1, a.epochs + 1):
        t0 = time.time()
        xt, yt = epoch_data()
        net.train()
        perm = torch.from_numpy(rng.permutation(len(xt)))
        tot_loss, correct = 0.0, 0
        for i in range(0, len(xt), a.batch):
            b = perm[i:i + a.batch]
            xb = xt[b]
            if a.specaug[0] or a.specaug[1]:
                xb = spec_augment(xb.clone())
            logits = net(xb)
            loss = lossf(logits, yt[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            tot_loss += float(loss) * len(b)
            correct += int((logits.argmax(1) == yt[b]).sum())
        vacc = float((predict(xv).argmax(1) == yv).float().mean())
        if vacc > best:
            best, best_epoch = vacc, ep
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        log("epoch %d: train loss %.3f acc %.3f | valid acc %.3f%s | %.0f s"
            % (ep, tot_loss / len(xt), correct / len(xt), vacc, " *" if ep == best_epoch else "",
               time.time() - t0))
    net.load_state_dict(best_state)

    # SC12: a word outside the ten (digits, _unknown_) counts as _unknown_
    pred = predict(xs).argmax(1).tolist()
    sc_pred = [SC12.index(CLASSES[k]) if CLASSES[k] in SC12 else SC12.index("_unknown_") for k in pred]
    per_class = {}
    for c, name in enumerate(SC12):
        idx = [i for i, t in enumerate(ls) if t == c]
        per_class[name] = round(sum(sc_pred[i] == c for i in idx) / max(1, len(idx)), 3)
    sc_acc = sum(p == t for p, t in zip(sc_pred, ls)) / max(1, len(ls))
    # FSDD: the best class other than _silence_ (st_asr_best_speech)
    sf = predict(xf)
    sf[:, 0] = -float("inf")
    fs_acc = float((sf.argmax(1) == yf).float().mean()) if len(yf) else None
    print(json.dumps({
        "model": "GRU %dx%d, %s-pooled linear read-out" % (a.layers, a.hidden, a.pool),
        "params": n_params, "classes": len(CLASSES), "epochs": a.epochs, "best_epoch": best_epoch,
        "valid_accuracy": round(best, 4), "sc_only": a.sc_only, "specaug": list(a.specaug), "cmn": a.cmn, "seed": a.seed, "threads": a.threads,
        "train": len(d["train"]) + 2 * len(noise), "train_clips": len(d["train"]),
        "noise_clips": len(noise), "valid": len(d["valid"]),
        "test_sc12": len(ls), "test_fsdd": len(yf),
        "sc12_accuracy": round(sc_acc, 4), "fsdd_accuracy": None if fs_acc is None else round(fs_acc, 4),
        "sc12_per_class": per_class,
        "cpu_s": round(time.process_time() - t_cpu, 1), "wall_s": round(time.time() - t_wall, 1),
    }))


if __name__ == "__main__":
    main()
