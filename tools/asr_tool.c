/*  tools/asr_tool.c - the recognizer's recipe: training features and
    training (`make asr-data`, `make train-asr`, `make train-asr-smoke`).

    The commands, their options and what they write: HELP below, printed by
    `asr-tool --help` (all of them) and `asr-tool CMD --help` (one).

    Workload: ~10k clips of 100 frames; data generation is dominated by the
    synthesizers and the resampler, training by the BPTT of the hidden layer.
*/
#include "audio/audio.h"
#include "base/base.h"
#include "snn/asr.h"
#include "snn/train.h"
#include "tools/asr_tool.h"
#include "tts/tts.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <samplerate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLIP 16000
#define FRAMES 100
#define MELS 40
/* --ctc: label sequences; a single word's second gets 0.3 s more after it
   (a causal net names a word once it has heard its end), whole requests
   are cut to 3 s (3.4 s after a slower augmented copy). */
#define CTC_CLIP (CLIP + 4800)
#define CTC_CLIP_FRAMES 130
#define CTC_MAX_FRAMES 350
#define CTC_MAX_SECONDS 3.0
#define CTC_MAX_LABELS 24
#define FEAT_CAP (CTC_MAX_FRAMES * MELS)
static bool ctc_mode; /* data --ctc */
static double pause_p; /* data --pauses P: share of --ctc requests with a pause inside */

static const char *const CLASSES[] = {
    "_silence_", "_unknown_",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "hello", "hi", "plus", "minus", "times", "what", "time", "timer", "seconds", "minutes",
    "count", "help", "repeat", "thanks", "goodbye", "joke", "story",
};
#define N_CLASSES (sizeof CLASSES / sizeof CLASSES[0])

/* Out-of-vocabulary words the synthesizer speaks as "_unknown_". */
static const char *const OOV[] = {
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "forward", "backward", "follow", "learn", "visual", "apple", "table", "window", "music",
    "yellow", "blue", "water", "paper", "summer", "winter", "friend", "garden", "open", "close",
    "start", "enter", "erase", "weather", "light", "play", "pause", "next", "back", "phone",
    "money", "river", "doctor", "hundred", "twenty", "thirty", "eleven", "twelve", "ten",
    "morning", "night", "water", "coffee", "seventy", "timing", "stopper", "going", "upper",
    "noon", "offer", "yet", "know", "son", "gone", "left over", "lucky", "candle", "number",
};
#define N_OOV (sizeof OOV / sizeof OOV[0])

/* What `asr-tool --help` and `asr-tool CMD --help` print: each command,
   its options and what it writes. */
static const struct {
    const char *name, *text;
} HELP[] = {
    {"data",
     "  asr-tool data  --data-dir D --out DIR [--configs N] [--aug K] [--seed S]\n"
     "      Features of 1-s clips (100 frames x 40 log-mel, the front end of\n"
     "      audio/audio.h at its defaults) into DIR/train.std and\n"
     "      DIR/valid.std (st_train_data files, normalised by DIR/norm.stf),\n"
     "      plus DIR/test_sc12.tsv and DIR/test_fsdd.tsv: the held-out\n"
     "      speakers' clips, for `spiketalk eval`; and DIR/valid_sc12.tsv,\n"
     "      the validation speakers' Speech Commands clips (the split members\n"
     "      and mixes are chosen on), in the same layout.\n"
     "      Sources: Speech Commands (speakers hashed: 20 % test, 10 %\n"
     "      validation, 70 % training), FSDD (speaker \"lucas\" held out for\n"
     "      test), espeak-ng and flite words (N voice/speed/pitch\n"
     "      configurations, every vocabulary word and some out-of-vocabulary\n"
     "      words each) and silence/noise from `_silence_`. Training clips are\n"
     "      augmented K times: speed 0.88-1.12, gain, noise from `_silence_`\n"
     "      at 0-25 dB SNR, a sparse reverberation tail, 8 kHz band limit.\n"
     "      Without the shared data, only the synthetic words are used.\n"
     "      --festival F: F more configurations spoken by festival's voices\n"
     "      (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts in turn, at a\n"
     "      random duration stretch 0.8-1.25), the same words each, cut at\n"
     "      festival's segment times (tools/asr_festival.c); default 0.\n"
     "      --synth-seeds: each synthesis draws libc's rand() from a hash of\n"
     "      its voice and text, so no word depends on what was synthesized\n"
     "      before it (flite's clustergen voices draw their noise from it).\n"
     "      --trim P: a share P of the augmented copies and of the silence\n"
     "      class's noise clips keep only their loudest 0.5-0.95 s (with their\n"
     "      noise), padded with the dither as a clip cut shorter than the\n"
     "      window is (default 0).\n"
     "      --snr-min DB: the augmentation's noise from DB (default 0, -20 to\n"
     "      25) to 25 dB SNR.\n"
     "      --sc-aug K3: Speech Commands' training clips get K3 augmented\n"
     "      copies instead of K (the human words a smaller share otherwise).\n"
     "      --norm FILE: normalise by FILE (another folder's norm.stf) instead\n"
     "      of this set's own statistics, so that nets trained on the two\n"
     "      folders can be merged.\n"
     "      --requests R (--per-config Q, 12; --request-aug K2, 1 augmented\n"
     "      copy of each request): words in context too: R voice\n"
     "      configurations each speak Q whole requests of the agent's domain\n"
     "      (templates below, fillers around); from each, 1-s windows that\n"
     "      END 0-100 ms after a word's end, labelled with that word (the\n"
     "      stream's \"word that just ended\"), windows ending inside a word\n"
     "      (_unknown_) and in the pause after the request (_silence_).\n"
     "      With --requests, voices of the held-out groups (pick_voice)\n"
     "      never train (without it, the single words use every voice, as\n"
     "      the shipped model's recipe does, so the request sets below share\n"
     "      voices with training then): they\n"
     "      speak the validation windows and DIR/valid_requests.tsv and\n"
     "      DIR/test_requests.tsv (wav files with each word's end, for\n"
     "      `spiketalk eval requests`; written with or without --requests:\n"
     "      R/5+1 and R/2+1 voices, R = 100 when not given, 5 requests each).\n"
     "      --ctc: label sequences for CTC instead: each single-word clip\n"
     "      (1 s, then 0.3 s of the dither: 130 frames) labelled [its class]\n"
     "      (silence and noise clips: the empty sequence), and with\n"
     "      --requests each training request as a whole utterance (its words\n"
     "      from 50 ms before the first to 50 ms after the last, cut to 3 s by\n"
     "      dropping words from the end, 0.1-0.5 s of the dither each side;\n"
     "      clean and --request-aug augmented copies: noise, speed, ... over\n"
     "      the whole) labelled with its words' classes in order (_unknown_\n"
     "      for words outside the vocabulary); validation by held-out voices\n"
     "      and speakers as above. Sets of up to 350 frames. --pauses P: a\n"
     "      share P of those requests (training and validation) gets a pause\n"
     "      of 0.15-0.8 s of the dither between two of its words (a person\n"
     "      pausing inside a request; the labels stay); default 0.\n"
     "      --an4 ALIGN (--an4-letters P, 0.25): AN4's words too, cut at the\n"
     "      times `asr-tool align` wrote to ALIGN: speakers hashed as Speech\n"
     "      Commands'; vocabulary words as their class, AN4's other words\n"
     "      (\"sixty\", \"oh\", \"enter\") as _unknown_, its spelled letters as\n"
     "      _unknown_ with p P; the held-out speakers' vocabulary words as\n"
     "      clips in DIR/test_an4/ listed in DIR/test_an4.tsv.\n"},
    {"align",
     "  asr-tool align AN4_DIR OUT\n"
     "      Word times of AN4's utterances (AN4_DIR/manifest.tsv) by forced\n"
     "      alignment with pocketsphinx (tools/asr_align.c) into OUT:\n"
     "      `path word start_s end_s speaker`.\n"},
    {"merge",
     "  asr-tool merge --out MODEL A.stm B.stm ...\n"
     "      The recognizers as one (snn/asr.h st_asr_ensemble: their nets side\n"
     "      by side, the read-out the mean of their logits); they must share\n"
     "      classes, normalisation (one data folder), front end and pooling.\n"
     "      Members trained with --cmn and without may be merged: the model\n"
     "      then takes the features twice, as each kind of member was trained\n"
     "      (tensor \"cmn\" = \"none,clip\" or \"clip,none\").\n"},
    {"train",
     "  asr-tool train --dir DIR --out MODEL [--epochs E] [--hidden H]\n"
     "                 [--threads T] [--max-steps S] [--lr L] [--loss L]\n"
     "                 [--warmup K] [--rate-reg R] [--clip N] [--init-scale S]\n"
     "                 [--checkpoint C] [--init C] [--ce-layers] [--max-frames F]\n"
     "                 [--mask-freq N:W] [--mask-time N:W] [--warp-time F]\n"
     "                 [--warp-freq F] [--seed S] [--cmn]\n"
     "      Trains 40 -> H recurrent LSNN -> LI read-out (one unit per\n"
     "      class) with cross-entropy on the read-out's max over time\n"
     "      (--loss ce_mean: its mean; --loss ctc on a --ctc set: CTC with\n"
     "      class 0, _silence_, as the blank, saved with pool \"ctc\"),\n"
     "      keeps the epoch best on the validation speakers, and writes the\n"
     "      recognizer (snn/asr.h) to MODEL. --max-steps stops early (smoke).\n"
     "      --warmup K steps of linear warm-up (50); --rate-reg R weighs the\n"
     "      trainer's firing-rate regulariser (target 0.05 spikes per neuron\n"
     "      and step; 0, off, by default); --clip N the gradient norm (1);\n"
     "      --init-scale S the hidden layers' input weights (1). --checkpoint C saves the trainer\n"
     "      (snn/train.h st_train_save) with each kept epoch; --init C starts\n"
     "      from the weights of such a checkpoint of the same layers (not its\n"
     "      optimizer state or schedule): CTC after cross-entropy (with\n"
     "      --ce-layers, the layers of a cross-entropy run; the blank's\n"
     "      read-out bias is raised\n"
     "      by the step of 2 up to 20 that gives the validation set the lowest\n"
     "      CTC loss). --max-frames F trains (and validates) on the samples\n"
     "      of at most F frames only (a --ctc set's single words: 130).\n"
     "      --cmn: each clip less its own mean per channel (cepstral mean\n"
     "      normalisation; the model file says so and st_asr subtracts the\n"
     "      mean of each clip or window it classifies; not with ctc).\n"
     "      --mask-freq N:W / --mask-time N:W: SpecAugment on every training\n"
     "      step (snn/train.h): N bands of 0 to W mel channels and N\n"
     "      stretches of 0 to W frames set to the features' mean, drawn\n"
     "      afresh each step (off by default). --warp-time F / --warp-freq F:\n"
     "      each training clip's frames stretched by 1 +- F about its middle,\n"
     "      its mel channels by 1 +- F (vocal tract length perturbation),\n"
     "      drawn afresh each step (snn/train.h; 0, off, by default; 0.1 is\n"
     "      the usual range). --seed S (0): another draw of the initial\n"
     "      weights, shuffles, masks and warps (the members of an ensemble,\n"
     "      `asr-tool merge`).\n"},
    {"rule",
     "  asr-tool rule --model MODEL [--on P] [--off P] [--min K] [--refractory K]\n"
     "                [--tail K]\n"
     "      Stores the streaming decision rule (snn/asr.h st_asr_set_stream;\n"
     "      tuned with `spiketalk eval requests` on DIR/valid_requests.tsv)\n"
     "      in MODEL: what a stream of it uses by default.\n"},
    {"lm",
     "  asr-tool lm --model MODEL [--out M2] [--requests N] [--per-word K]\n"
     "              [--mix W] [--seed S] [--alpha A] [--beta B] [--margin M]\n"
     "              [--beam K]\n"
     "      Stores a word bigram and the beam search's settings in a ctc\n"
     "      MODEL (snn/asr.h st_asr_set_lm; `make asr-stream-lm`): label\n"
     "      bigrams counted over N requests of the generator below (20000,\n"
     "      drawn from seed S) and each label alone K times (100), the start\n"
     "      and end of each as label 0, interpolated W (0.9) with the\n"
     "      unigram (add one half) so that orders the templates never make\n"
     "      keep a fair chance. Written to M2, or over MODEL.\n"},
};

/* ---- small helpers ---- */

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double urand(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static double uniform(double lo, double hi) { return lo + (hi - lo) * urand(); }

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int class_of(const char *word)
{
    for (size_t k = 2; k < N_CLASSES; k++)
        if (!strcmp(CLASSES[k], word))
            return (int)k;
    return ST_ASR_UNKNOWN;
}

/* Resamples x (n at rate_in) by ratio out/in into a new buffer. */
static float *resample(const float *x, size_t n, double ratio, size_t *n_out)
{
    size_t cap = (size_t)(n * ratio) + 16;
    float *y = calloc(cap, sizeof *y);
    if (!y)
        return NULL;
    SRC_DATA d = {.data_in = x, .data_out = y, .input_frames = (long)n,
                  .output_frames = (long)cap, .src_ratio = ratio};
    if (src_simple(&d, SRC_SINC_FASTEST, 1) != 0) {
        free(y);
        return NULL;
    }
    *n_out = (size_t)d.output_frames_gen;
    return y;
}

/* ---- the data set being built ---- */

typedef struct {
    float *x;      /* [n][slot][MELS]: slot FRAMES, or CTC_MAX_FRAMES with --ctc */
    int32_t *label; /* the class (--ctc: the first label, 0 for none) */
    uint32_t *steps;
    int32_t (*seq)[CTC_MAX_LABELS]; /* --ctc: the classes in order */
    uint8_t *n_lab;
    size_t n, cap;
} set;

static size_t slot_frames(void) { return ctc_mode ? CTC_MAX_FRAMES : FRAMES; }

/* *p resized to bytes; -1 (and *p as it was) when that fails. */
static int grow(void **p, size_t bytes)
{
    void *q = realloc(*p, bytes);
    if (!q)
        return -1;
    *p = q;
    return 0;
}

static void set_free(set *s)
{
    free(s->x);
    free(s->label);
    free(s->steps);
    free(s->seq);
    free(s->n_lab);
}

/* One sample: `steps` frames and its classes (one, or with --ctc 0 to
   CTC_MAX_LABELS). */
static int set_push_seq(set *s, const float *feat, size_t steps, const int32_t *labels,
                        size_t n_labels)
{
    const size_t T = slot_frames();
    if (steps > T)
        steps = T;
    if (n_labels > CTC_MAX_LABELS)
        n_labels = CTC_MAX_LABELS;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        if (grow((void **)&s->x, cap * T * MELS * sizeof *s->x) ||
            grow((void **)&s->label, cap * sizeof *s->label) ||
            grow((void **)&s->steps, cap * sizeof *s->steps) ||
            grow((void **)&s->seq, cap * sizeof *s->seq) ||
            grow((void **)&s->n_lab, cap * sizeof *s->n_lab))
            return -1;
        s->cap = cap;
    }
    float *dst = s->x + s->n * T * MELS;
    memcpy(dst, feat, steps * MELS * sizeof *feat);
    memset(dst + steps * MELS, 0, (T - steps) * MELS * sizeof *dst);
    s->steps[s->n] = (uint32_t)steps;
    s->label[s->n] = n_labels ? labels[0] : ST_ASR_SILENCE;
    if (n_labels)
        memcpy(s->seq[s->n], labels, n_labels * sizeof *labels);
    s->n_lab[s->n] = (uint8_t)n_labels;
    s->n++;
    return 0;
}

/* A clip of one class (--ctc: that class as a sequence of one; silence: none). */
static int set_push(set *s, const float *feat, int label)
{
    int32_t l = label;
    if (ctc_mode)
        return set_push_seq(s, feat, CTC_CLIP_FRAMES, &l, label == ST_ASR_SILENCE ? 0 : 1);
    return set_push_seq(s, feat, FRAMES, &l, 1);
}

typedef struct {
    float **clips;
    size_t *len;
    size_t n;
} noise_bank;

static st_frontend *fe;
static noise_bank noise_train;
static double snr_min_db = 0; /* --snr-min: the quietest speech over the noise */
static double trim_p = 0;     /* --trim: the share of augmented copies cut short */

/* 1 s of 16 kHz audio (x, n samples: the clip is placed at `offset` or, when
   longer, its loudest second is taken) -> FRAMES x MELS log-mel. With --ctc
   0.3 s of the dither follow (CTC_CLIP_FRAMES frames). */
static void features(const float *x, size_t n, bool random_place, float *feat)
{
    static float buf[CTC_CLIP];
    const size_t len = ctc_mode ? CTC_CLIP : CLIP, frames = ctc_mode ? CTC_CLIP_FRAMES : FRAMES;
    for (size_t i = 0; i < len; i++)
        buf[i] = (float)((urand() - 0.5) * 2e-4);
    if (n > CLIP) {
        size_t best = 0;
        double best_e = -1;
        for (size_t o = 0; o + CLIP <= n; o += 800) {
            double e = 0;
            for (size_t i = o; i < o + CLIP; i += 4)
                e += x[i] * x[i];
            if (e > best_e) {
                best_e = e;
                best = o;
            }
        }
        for (size_t i = 0; i < CLIP; i++)
            buf[i] += x[best + i];
    } else {
        size_t room = CLIP - n;
        size_t off = random_place ? (size_t)(urand() * (double)room) : room / 2;
        for (size_t i = 0; i < n; i++)
            buf[off + i] += x[i];
    }
    st_frontend_reset(fe, 0);
    size_t used = 0, made = 0;
    st_frontend_process(fe, buf, len, feat, NULL, frames, &used, &made);
    for (size_t k = made; k < frames; k++)
        memcpy(feat + k * MELS, feat + (made ? made - 1 : 0) * MELS, MELS * sizeof *feat);
}

/* All of x (n samples) -> at most CTC_MAX_FRAMES frames; returns how many. */
static size_t features_all(const float *x, size_t n, float *feat)
{
    st_frontend_reset(fe, 0);
    size_t used = 0, made = 0;
    st_frontend_process(fe, x, n, feat, NULL, CTC_MAX_FRAMES, &used, &made);
    return made;
}

/* Augments y (n samples, 16 kHz) in place or into a new buffer; returns the
   buffer (y itself or a new one, *n updated). */
static float *augment(float *y, size_t *n)
{
    /* speed (tempo and pitch together) */
    if (urand() < 0.8) {
        size_t m = 0;
        float *z = resample(y, *n, uniform(0.88, 1.12), &m);
        if (z) {
            free(y);
            y = z;
            *n = m;
        }
    }
    /* 8 kHz band limit */
    if (urand() < 0.25) {
        size_t m = 0, m2 = 0;
        float *z = resample(y, *n, 0.5, &m);
        float *w = z ? resample(z, m, 2.0, &m2) : NULL;
        free(z);
        if (w) {
            free(y);
            y = w;
            *n = m2;
        }
    }
    /* reverberation: a sparse decaying tail */
    if (urand() < 0.25) {
        float *z = calloc(*n, sizeof *z);
        if (z) {
            double rt = uniform(0.1, 0.5);
            memcpy(z, y, *n * sizeof *z);
            for (int t = 0; t < 40; t++) {
                double d_s = uniform(0.003, 0.2);
                size_t d = (size_t)(d_s * 16000);
                float g = (float)(uniform(-1, 1) * 0.5 * pow(10, -3 * d_s / rt));
                for (size_t i = d; i < *n; i++)
                    z[i] += g * y[i - d];
            }
            free(y);
            y = z;
        }
    }
    /* gain: peak to -30..-1 dBFS */
    float peak = 1e-9f;
    for (size_t i = 0; i < *n; i++)
        peak = fabsf(y[i]) > peak ? fabsf(y[i]) : peak;
    float g = (float)(pow(10, uniform(-30, -1) / 20) / peak);
    double p = 0;
    for (size_t i = 0; i < *n; i++) {
        y[i] *= g;
        p += (double)y[i] * y[i];
    }
    p /= (double)(*n ? *n : 1);
    /* noise at snr_min_db (0)..25 dB SNR (against the clip's mean power) */
    if (noise_train.n && urand() < 0.7) {
        size_t k = rnd() % noise_train.n;
        const float *nz = noise_train.clips[k];
        size_t nl = noise_train.len[k];
        double pn = 1e-12;
        for (size_t i = 0; i < nl; i++)
            pn += (double)nz[i] * nz[i];
        pn /= (double)nl;
        double snr = uniform(snr_min_db, 25);
        float a = (float)sqrt(p * 3 / pn / pow(10, snr / 10)); /* speech is ~1/3 of the clip */
        size_t o = rnd() % nl;
        for (size_t i = 0; i < *n; i++)
            y[i] += a * nz[(o + i) % nl];
    }
    return y;
}

/* An augmented copy of y (n samples), its length in *m; NULL when out of
   memory. y is left as it is. */
static float *augmented_copy(const float *y, size_t n, size_t *m)
{
    float *z = malloc(n * sizeof *z);
    if (!z)
        return NULL;
    memcpy(z, y, n * sizeof *z);
    *m = n;
    return augment(z, m);
}

static float *load16k(const char *path, size_t *n)
{
    st_audio a = {0};
    if (st_audio_read(path, &a) != ST_OK) {
        fprintf(stderr, "asr-tool: %s: %s\n", path, st_errmsg());
        return NULL;
    }
    float *y;
    if (a.sample_rate_hz == 16000) {
        y = a.samples;
        *n = a.frames;
        a.samples = NULL;
    } else {
        y = resample(a.samples, a.frames, 16000.0 / a.sample_rate_hz, n);
    }
    st_audio_free(&a);
    return y;
}

/* The normalisation of another data folder (norm.stf), so that nets trained
   on this data merge with nets trained on that (asr-tool merge). */
static int load_norm(const char *path, float *mean, float *std)
{
    int err = ST_OK;
    st_tensor_file *nf = st_tensor_file_load(path, &err);
    if (!nf)
        return err;
    st_tensor tm, ts;
    uint64_t dims[1] = {MELS};
    if ((err = st_tensor_file_expect(nf, "feat_mean", ST_DTYPE_F32, 1, dims, &tm)) == ST_OK &&
        (err = st_tensor_file_expect(nf, "feat_std", ST_DTYPE_F32, 1, dims, &ts)) == ST_OK) {
        memcpy(mean, tm.data, MELS * sizeof *mean);
        memcpy(std, ts.data, MELS * sizeof *std);
    }
    st_tensor_file_destroy(&nf);
    return err;
}

/* An option's value as a whole number in lo..hi, or exit 2 with a message
   that names the command, the option and what it takes (before any work). */
static long whole_arg(const char *cmd, const char *opt, const char *v, long lo, long hi,
                      const char *what)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "asr-tool %s: %s takes %s %ld..%ld, not '%s'\n", cmd, opt, what, lo, hi,
                v);
        exit(2);
    }
    return x;
}

/* The same for a real number in lo..hi. */
static double real_arg(const char *cmd, const char *opt, const char *v, double lo, double hi,
                       const char *what)
{
    char *end = NULL;
    double x = strtod(v, &end);
    if (end == v || *end || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "asr-tool %s: %s takes %s %g..%g, not '%s'\n", cmd, opt, what, lo, hi, v);
        exit(2);
    }
    return x;
}

/* --trim: with p trim_p, y (n samples, a word's augmented copy or a noise
   clip) keeps only its loudest 0.5-0.95 s, its noise with it, and
   features() pads the rest with the dither, as a recording cut closer to its
   word than the window: the model learns that those edges are not a word. */
static void maybe_trim(float *y, size_t *n)
{
    if (trim_p <= 0 || urand() >= trim_p)
        return;
    size_t keep = (size_t)(uniform(0.5, 0.95) * 16000);
    if (keep >= *n)
        return;
    size_t best = 0;
    double e = 0, best_e = -1;
    for (size_t i = 0; i < *n; i++) {
        e += (double)y[i] * y[i];
        if (i >= keep)
            e -= (double)y[i - keep] * y[i - keep];
        if (i + 1 >= keep && e > best_e) {
            best_e = e;
            best = i + 1 - keep;
        }
    }
    memmove(y, y + best, keep * sizeof *y);
    *n = keep;
}

/* One clip -> the sets: the original (train or valid), plus K augmented copies (train). */
static int add_clip(set *s, float *y, size_t n, int label, int aug, bool keep_clean,
                    bool random_place)
{
    static float feat[FEAT_CAP];
    if (keep_clean) {
        features(y, n, random_place, feat);
        if (set_push(s, feat, label))
            return -1;
    }
    for (int k = 0; k < aug; k++) {
        size_t m;
        float *z = augmented_copy(y, n, &m);
        if (!z)
            return -1;
        maybe_trim(z, &m);
        features(z, m, true, feat);
        free(z);
        if (set_push(s, feat, label))
            return -1;
    }
    return 0;
}

static int save_set(const set *s, const char *path, const float *mean, const float *std)
{
    int err = ST_OK;
    const size_t T = slot_frames();
    st_train_data *d = st_train_data_new(s->n, T, MELS, &err);
    if (!d)
        return err;
    float *tmp = malloc(T * MELS * sizeof *tmp);
    if (!tmp)
        err = ST_ERR_NOMEM;
    for (size_t k = 0; k < s->n && err == ST_OK; k++) {
        for (size_t i = 0; i < s->steps[k] * MELS; i++)
            tmp[i] = (s->x[k * T * MELS + i] - mean[i % MELS]) / std[i % MELS];
        if (ctc_mode) {
            /* the trainer's CTC labels skip the blank (class 0): class c is label c - 1 */
            int32_t lab[CTC_MAX_LABELS];
            for (size_t i = 0; i < s->n_lab[k]; i++)
                lab[i] = s->seq[k][i] - 1;
            err = st_train_data_set_seq(d, k, tmp, s->steps[k], lab, s->n_lab[k]);
        } else {
            err = st_train_data_set(d, k, tmp, s->steps[k], s->label[k]);
        }
    }
    free(tmp);
    if (err == ST_OK)
        err = st_train_data_save(d, path);
    st_train_data_destroy(&d);
    return err;
}

static char *next_field(char **p)
{
    char *s = *p;
    if (!s)
        return NULL;
    char *t = strchr(s, '\t');
    if (t) {
        *t = 0;
        *p = t + 1;
    } else {
        s[strcspn(s, "\r\n")] = 0;
        *p = NULL;
    }
    return s;
}

/* Voices never used in training: the espeak-ng variants whose name hashes
   to 0 mod 4, and flite's rms. The held-out request sets are spoken by them:
   variants hashing to 0 mod 8 (and rms) for the test set, the others for the
   validation set the decision rule is tuned on. */
/* The split of a speaker (or a clip, keyed by its path): FNV-1a mod 10, 0-1
   test (2), 2 validation (1), the rest training (0). Speech Commands and AN4
   share it. */
static int split_of(const char *key)
{
    const uint32_t h = hash_str(key) % 10;
    return h < 2 ? 2 : h == 2 ? 1 : 0;
}

static bool variant_held_out(const char *name) { return hash_str(name) % 4 == 0; }
static const char *const FLITE_TRAIN[] = {"kal16", "awb", "slt", "kal"};

/* A random voice configuration for training (held_out 0) or for a held-out
   request set (1 validation, 2 test); voice[] holds the espeak name. */
static void pick_voice(st_tts_params *p, char *voice, size_t cap, int c, int held_out,
                       const st_tts_voice_info *voices, int nv, const st_tts_voice_info *variants,
                       int nvar)
{
    *p = st_tts_default_params();
    p->rate_wpm = (int)uniform(120, 260);
    p->sample_rate_hz = 16000;
    p->lead_silence_ms = 0;
    if (held_out == 2 && c % 5 == 4) {
        p->engine = "flite";
        p->voice = "rms";
        return;
    }
    if (!held_out && c % 5 == 4) {
        p->engine = "flite";
        p->voice = FLITE_TRAIN[(c / 5) % 4];
        return;
    }
    if (nv <= 0)
        return;
    const char *lang = voices[rnd() % (unsigned)nv].name;
    const char *var = NULL;
    for (int tries = 0; nvar > 0 && tries < 1000 && (held_out || urand() < 0.8); tries++) {
        const char *v = variants[rnd() % (unsigned)nvar].name;
        bool out = variant_held_out(v), test = hash_str(v) % 8 == 0;
        if ((!held_out && !out) || (held_out == 1 && out && !test) || (held_out == 2 && test)) {
            var = v;
            break;
        }
    }
    if (var)
        snprintf(voice, cap, "%s+%s", lang, var);
    else
        snprintf(voice, cap, "%s", lang);
    p->voice = voice;
    p->pitch = (int)uniform(15, 85);
}

/* The voices of the recipe without whole requests (the shipped model's):
   any espeak-ng variant, every flite voice, drawn in this order. Held-out
   voices matter only when requests are trained and evaluated. */
static void pick_voice_words(st_tts_params *p, char *voice, size_t cap, int c,
                             const st_tts_voice_info *voices, int nv,
                             const st_tts_voice_info *variants, int nvar)
{
    static const char *const flite[] = {"kal16", "awb", "rms", "slt", "kal"};
    *p = st_tts_default_params();
    if (c % 5 == 4) {
        p->engine = "flite";
        p->voice = flite[(c / 5) % 5];
    } else if (nv > 0) {
        const char *lang = voices[rnd() % (unsigned)nv].name;
        if (nvar > 0 && urand() < 0.8)
            snprintf(voice, cap, "%s+%s", lang, variants[rnd() % (unsigned)nvar].name);
        else
            snprintf(voice, cap, "%s", lang);
        p->voice = voice;
        p->pitch = (int)uniform(15, 85);
    }
    p->rate_wpm = (int)uniform(120, 260);
    p->sample_rate_hz = 16000;
    p->lead_silence_ms = 0;
}

/* --synth-seeds: each synthesis draws libc's rand() from a hash of its voice
   and text (st_tts_seed_draws), so that no word depends on what was
   synthesized before it. flite's clustergen voices (awb, rms, slt) take
   their excitation noise from rand(), and one synthesis that drew a
   different number of times once changed every clustergen word after it
   (models/README.md, "the first-run data difference"). */
static bool synth_seeds;

static int synthesize(st_tts *t, const st_tts_params *p, const char *text, st_tts_result *r)
{
    if (synth_seeds) {
        char key[256];
        snprintf(key, sizeof key, "%s/%s/%d/%d", p->engine ? p->engine : "espeak",
                 p->voice ? p->voice : "", p->rate_wpm, p->pitch);
        st_tts_seed_draws(key, text);
    }
    return st_tts_synthesize(t, text, r);
}

/* Progress of the synthetic voices: redrawn in place on a terminal; in a
   log (make train-asr > log) a line at every tenth and at the end. */
static void config_progress(const char *what, int done, int total)
{
    static int tty = -1;
    if (tty < 0)
        tty = isatty(STDERR_FILENO);
    if (tty)
        fprintf(stderr, "\rasr-tool: %s configurations %d/%d%s", what, done, total,
                done == total ? "\n" : "");
    else if (done == total || done % ((total + 9) / 10) == 0)
        fprintf(stderr, "asr-tool: %s configurations %d/%d\n", what, done, total);
}

static int synth_words(set *train, int n_configs, int aug, bool hold_out_voices)
{
    st_tts_voice_info voices[64], variants[128];
    int nv = st_tts_list_voices("espeak", voices, 64);
    int nvar = st_tts_list_variants(variants, 128);
    if (nv > 64)
        nv = 64;
    if (nvar > 128)
        nvar = 128;
    int made = 0;
    for (int c = 0; c < n_configs; c++) {
        char voice[160];
        st_tts_params p;
        if (hold_out_voices)
            pick_voice(&p, voice, sizeof voice, c, 0, voices, nv, variants, nvar);
        else
            pick_voice_words(&p, voice, sizeof voice, c, voices, nv, variants, nvar);
        int err = 0;
        st_tts *t = st_tts_new(&p, &err);
        if (!t) {
            fprintf(stderr, "asr-tool: voice %s: %s\n", p.voice ? p.voice : "?", st_errmsg());
            continue;
        }
        size_t n_words = N_CLASSES - 2 + 12;
        for (size_t w = 0; w < n_words; w++) {
            const char *text = w < N_CLASSES - 2 ? CLASSES[w + 2] : OOV[rnd() % N_OOV];
            int label = w < N_CLASSES - 2 ? (int)w + 2 : ST_ASR_UNKNOWN;
            st_tts_result r = {0};
            if (synthesize(t, &p, text, &r) != ST_OK || r.frames < 400) {
                st_tts_result_free(&r);
                continue;
            }
            /* trim to the word's sound when the synthesizer said where it is */
            size_t a = 0, b = r.frames;
            if (r.n_words >= 1 && r.words[0].end > r.words[0].start && !strchr(text, ' ')) {
                a = r.words[0].start > 800 ? r.words[0].start - 800 : 0;
                b = r.words[r.n_words - 1].end + 1600 < r.frames ? r.words[r.n_words - 1].end + 1600
                                                                  : r.frames;
            }
            float *y = malloc((b - a) * sizeof *y);
            if (y) {
                memcpy(y, r.samples + a, (b - a) * sizeof *y);
                add_clip(train, y, b - a, label, aug, false, true);
                free(y);
                made++;
            }
            st_tts_result_free(&r);
        }
        st_tts_destroy(&t);
        config_progress("synthetic", c + 1, n_configs);
    }
    return made;
}

/* festival's voices (Debian's festvox-kallpc16k, festvox-kdlpc16k and
   festvox-us-slt-hts): --festival N configurations, each speaking every
   vocabulary word and 12 out-of-vocabulary words at a random duration
   stretch, cut at festival's segment times (tools/asr_festival.c). */
static const char *const FESTIVAL[] = {"kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"};

typedef struct {
    set *train;
    const int *labels;
    int aug, made;
} festival_sink;

static void festival_word(const float *x, size_t n, size_t k, void *user)
{
    festival_sink *s = user;
    float *y = malloc(n * sizeof *y);
    if (!y)
        return;
    memcpy(y, x, n * sizeof *y);
    if (add_clip(s->train, y, n, s->labels[k], s->aug, false, true) == 0)
        s->made++;
    free(y);
}

static int festival_words(set *train, int n_configs, int aug)
{
    int made = 0;
    for (int c = 0; c < n_configs; c++) {
        const char *words[N_CLASSES - 2 + 12];
        int labels[N_CLASSES - 2 + 12];
        size_t n = 0;
        for (size_t w = 0; w < N_CLASSES - 2 + 12; w++, n++) {
            words[n] = w < N_CLASSES - 2 ? CLASSES[w + 2] : OOV[rnd() % N_OOV];
            labels[n] = w < N_CLASSES - 2 ? (int)w + 2 : ST_ASR_UNKNOWN;
        }
        festival_sink s = {.train = train, .labels = labels, .aug = aug};
        if (asr_festival_words(FESTIVAL[c % 3], uniform(0.8, 1.25), words, n, festival_word,
                               &s) < 0)
            return -1;
        made += s.made;
        config_progress("festival", c + 1, n_configs);
    }
    return made;
}

/* ---- whole requests (words in context) ---- */

static const char *const DIGIT[] = {"zero", "one", "two", "three", "four",
                                    "five", "six", "seven", "eight", "nine"};

/* Request templates from the agent's domain; each # is a random digit word. */
static const char *const REQUEST[] = {
    "what is # times #", "what is # plus #", "what is # minus #", "# times #", "# plus # minus #",
    "set a timer for # minutes", "set a timer for # seconds", "timer # minutes",
    "start a timer for # minutes and # seconds", "count down from #", "count to #",
    "count from # to #", "tell me a joke", "tell me a story", "another joke", "hello",
    "hi there", "hello how are you", "hi", "what time is it", "what is the time", "time",
    "help", "can you help me", "help me please", "repeat that", "please repeat", "repeat",
    "thanks", "thank you", "thanks a lot", "goodbye", "okay goodbye", "yes", "no",
    "yes please", "no thanks", "go", "stop", "stop the timer", "turn it up", "turn it down",
    "turn on the light", "turn off the light", "go left", "go right", "left", "right", "up",
    "down", "on", "off", "what is # times # please", "yes # minutes", "no stop",
    "the weather is nice today", "play some music", "open the window", "call my friend",
};
#define N_REQUEST (sizeof REQUEST / sizeof REQUEST[0])
static const char *const FILLER[] = {"um", "okay", "so", "hey", "please", "well", "and", "now"};
#define N_FILLER (sizeof FILLER / sizeof FILLER[0])

static void make_request(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    if (urand() < 0.3)
        o += (size_t)snprintf(out + o, cap - o, "%s ", FILLER[rnd() % N_FILLER]);
    for (const char *t = REQUEST[rnd() % N_REQUEST]; *t && o + 8 < cap; t++) {
        if (*t == '#')
            o += (size_t)snprintf(out + o, cap - o, "%s", DIGIT[rnd() % 10]);
        else
            out[o++] = *t, out[o] = 0;
    }
    if (urand() < 0.2 && o + 12 < cap)
        snprintf(out + o, cap - o, " %s", FILLER[rnd() % N_FILLER]);
}

/* The class of a synthesizer word ("Seven," -> seven). */
static int class_of_spoken(const char *text)
{
    char w[ST_TTS_MAX_WORD_BYTES + 1];
    size_t n = 0;
    for (; *text && n < sizeof w - 1; text++)
        if ((*text >= 'a' && *text <= 'z') || (*text >= 'A' && *text <= 'Z'))
            w[n++] = (char)(*text | 0x20);
    w[n] = 0;
    return class_of(w);
}

/* The second of audio that ends at sample `end` of x (n samples; before 0
   and past n only the dither) -> FRAMES x MELS. */
static void features_ending(const float *x, size_t n, long end, float *feat)
{
    static float buf[CLIP];
    for (long i = 0; i < CLIP; i++) {
        long j = end - CLIP + i;
        buf[i] = (float)((urand() - 0.5) * 2e-4) + (j >= 0 && j < (long)n ? x[j] : 0.0f);
    }
    st_frontend_reset(fe, 0);
    size_t used = 0, made = 0;
    st_frontend_process(fe, buf, CLIP, feat, NULL, FRAMES, &used, &made);
    for (size_t k = made; k < FRAMES; k++)
        memcpy(feat + k * MELS, feat + (made ? made - 1 : 0) * MELS, MELS * sizeof *feat);
}

/* Windows of one spoken request (y, n samples; word times scaled by
   `scale`): one ending 0-100 ms after each word's end, labelled with that
   word (_unknown_ for a word outside the vocabulary, half of them); with
   p 0.15 one ending inside a word, _unknown_; with p 0.5 one ending in the trailing pause at
   least 300 ms after the last word, _silence_. */
static int request_windows(set *s, const float *y, size_t n, const st_tts_word *w, size_t nw,
                           double scale)
{
    static float feat[FRAMES * MELS];
    int pushed = 0;
    for (size_t i = 0; i < nw; i++) {
        double a = (double)w[i].start * scale, b = (double)w[i].end * scale;
        if (b <= a)
            continue;
        int label = class_of_spoken(w[i].text);
        if (label != ST_ASR_UNKNOWN || urand() < 0.5) {
            features_ending(y, n, (long)(b + uniform(0, 1600)), feat);
            if (set_push(s, feat, label))
                return -1;
            pushed++;
        }
        if (urand() < 0.15 && b - a > 1600) {
            features_ending(y, n, (long)(a + (b - a) * uniform(0.2, 0.6)), feat);
            if (set_push(s, feat, ST_ASR_UNKNOWN))
                return -1;
            pushed++;
        }
    }
    double last = nw ? (double)w[nw - 1].end * scale : 0;
    if (nw && urand() < 0.5 && last + 4800 < (double)n) {
        features_ending(y, n, (long)uniform(last + 4800, (double)n), feat);
        if (set_push(s, feat, ST_ASR_SILENCE))
            return -1;
        pushed++;
    }
    return pushed;
}

/* Speaks a request with voice configuration c of group `held_out` (0
   training); returns the audio padded with lead (0-300 ms) and trail
   (400-800 ms) silence, *n its length, the words in r (times shifted). */
static float *speak_request(st_tts *t, const st_tts_params *p, const char *text,
                            st_tts_result *r, size_t *n)
{
    if (synthesize(t, p, text, r) != ST_OK || r->frames < 400 || r->n_words == 0)
        return NULL;
    size_t lead = (size_t)uniform(0, 4800), trail = (size_t)uniform(6400, 12800);
    float *y = malloc((lead + r->frames + trail) * sizeof *y);
    if (!y)
        return NULL;
    for (size_t i = 0; i < lead + r->frames + trail; i++) /* the -86 dBFS dither of features() */
        y[i] = (float)((urand() - 0.5) * 2e-4);
    for (size_t i = 0; i < r->frames; i++)
        y[lead + i] += r->samples[i];
    for (size_t i = 0; i < r->n_words; i++) {
        r->words[i].start += lead;
        r->words[i].end += lead;
    }
    *n = lead + r->frames + trail;
    return y;
}

/* --ctc: one spoken request (r: the synthesizer's audio and words) as a
   whole utterance: from 50 ms before its first word to 50 ms after its last
   (words dropped from the end until it fits CTC_MAX_SECONDS), 0.1-0.5 s of
   the dither before and after, labelled with its words' classes
   (_unknown_ for words outside the vocabulary); clean, and `aug`
   augmented copies (noise, speed, ... over the whole). Returns the
   samples pushed, -1 when out of memory. */
static int ctc_request(set *s, const st_tts_result *r, int aug)
{
    static float feat[FEAT_CAP];
    int32_t lab[CTC_MAX_LABELS];
    size_t nw = r->n_words < CTC_MAX_LABELS ? r->n_words : CTC_MAX_LABELS;
    if (nw == 0)
        return 0;
    size_t a = r->words[0].start > 800 ? r->words[0].start - 800 : 0;
    size_t lead = (size_t)uniform(1600, 8000), trail = (size_t)uniform(1600, 8000);
    const size_t max_len = (size_t)(CTC_MAX_SECONDS * 16000);
    size_t last = nw;
    while (last > 0 && r->words[last - 1].end + 800 > a + max_len - lead - trail)
        last--;
    if (last == 0 || r->words[last - 1].end <= a)
        return 0;
    size_t b = r->words[last - 1].end + 800;
    if (last < r->n_words && r->words[last].start < b)
        b = r->words[last].start;
    if (b > r->frames)
        b = r->frames;
    size_t n_lab = 0;
    for (size_t i = 0; i < last; i++) {
        bool letters = false;
        for (const char *c = r->words[i].text; *c; c++)
            letters |= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z');
        if (letters)
            lab[n_lab++] = class_of_spoken(r->words[i].text);
    }
    if (n_lab == 0)
        return 0;
    /* --pauses: a pause of 0.15-0.8 s between two words (a person's "set a
       timer for ... five minutes"), inside the 3 s; the labels stay */
    size_t cut = b, pause = 0;
    if (pause_p > 0 && last >= 2 && urand() < pause_p) {
        size_t j = (size_t)(rnd() % (unsigned)(last - 1));
        cut = (r->words[j].end + r->words[j + 1].start) / 2;
        pause = (size_t)uniform(2400, 12800);
        size_t room = max_len > lead + (b - a) + trail ? max_len - (lead + (b - a) + trail) : 0;
        if (pause > room)
            pause = room;
        if (pause < 2400 || cut <= a || cut >= b)
            cut = b, pause = 0;
    }
    size_t n = lead + (b - a) + pause + trail;
    float *y = malloc(n * sizeof *y);
    if (!y)
        return -1;
    for (size_t i = 0; i < n; i++) /* the -86 dBFS dither of features() */
        y[i] = (float)((urand() - 0.5) * 2e-4);
    for (size_t i = a; i < b; i++)
        y[lead + i - a + (i >= cut ? pause : 0)] += r->samples[i];
    int pushed = 0;
    size_t frames = features_all(y, n, feat);
    if (set_push_seq(s, feat, frames, lab, n_lab)) {
        free(y);
        return -1;
    }
    pushed++;
    for (int k = 0; k < aug; k++) {
        size_t m;
        float *z = augmented_copy(y, n, &m);
        if (!z)
            break;
        frames = features_all(z, m, feat);
        free(z);
        if (set_push_seq(s, feat, frames, lab, n_lab)) {
            free(y);
            return -1;
        }
        pushed++;
    }
    free(y);
    return pushed;
}

static int synth_requests(set *train, int n_configs, int per_config, int aug, int held_out)
{
    st_tts_voice_info voices[64], variants[128];
    int nv = st_tts_list_voices("espeak", voices, 64);
    int nvar = st_tts_list_variants(variants, 128);
    nv = nv > 64 ? 64 : nv;
    nvar = nvar > 128 ? 128 : nvar;
    int made = 0;
    for (int c = 0; c < n_configs; c++) {
        char voice[160], text[256];
        st_tts_params p;
        st_tts *t = NULL;
        for (int tries = 0; !t && tries < 5; tries++) { /* a few variants fail to load */
            pick_voice(&p, voice, sizeof voice, c, held_out, voices, nv, variants, nvar);
            p.rate_wpm = (int)uniform(130, 230);
            int err = 0;
            t = st_tts_new(&p, &err);
        }
        if (!t) {
            fprintf(stderr, "asr-tool: voice %s: %s\n", p.voice ? p.voice : "?", st_errmsg());
            continue;
        }
        for (int q = 0; q < per_config; q++) {
            make_request(text, sizeof text);
            st_tts_result r = {0};
            size_t n = 0;
            if (ctc_mode) {
                if (synthesize(t, &p, text, &r) == ST_OK && r.frames >= 400) {
                    int k = ctc_request(train, &r, aug);
                    made += k > 0 ? k : 0;
                }
                st_tts_result_free(&r);
                continue;
            }
            float *y = speak_request(t, &p, text, &r, &n);
            if (y) {
                int k = request_windows(train, y, n, r.words, r.n_words, 1.0);
                made += k > 0 ? k : 0;
                for (int a = 0; a < aug; a++) {
                    size_t m;
                    float *z = augmented_copy(y, n, &m);
                    if (!z)
                        break;
                    k = request_windows(train, z, m, r.words, r.n_words, (double)m / (double)n);
                    made += k > 0 ? k : 0;
                    free(z);
                }
                free(y);
            }
            st_tts_result_free(&r);
        }
        st_tts_destroy(&t);
        config_progress("request", c + 1, n_configs);
    }
    return made;
}

/* The held-out request sets (voices never used in training), as files for
   `spiketalk eval requests`: DIR/NAME/ (one wav a request) and DIR/NAME.tsv with the
   columns path, text (the synthesizer's words), speaker, ends (each word's
   end in seconds, space-separated). */
static int write_requests(const char *out, const char *name, int held_out, int n_configs,
                          int per_config)
{
    st_tts_voice_info voices[64], variants[128];
    int nv = st_tts_list_voices("espeak", voices, 64);
    int nvar = st_tts_list_variants(variants, 128);
    nv = nv > 64 ? 64 : nv;
    nvar = nvar > 128 ? 128 : nvar;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out, name);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s.tsv", out, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "path\ttext\tspeaker\tends\n");
    int made = 0;
    for (int c = 0; c < n_configs; c++) {
        char voice[160], text[256];
        st_tts_params p;
        st_tts *t = NULL;
        for (int tries = 0; !t && tries < 5; tries++) { /* a few variants fail to load */
            pick_voice(&p, voice, sizeof voice, c, held_out, voices, nv, variants, nvar);
            p.rate_wpm = (int)uniform(130, 230);
            int err = 0;
            t = st_tts_new(&p, &err);
        }
        if (!t)
            continue;
        for (int q = 0; q < per_config; q++) {
            make_request(text, sizeof text);
            st_tts_result r = {0};
            size_t n = 0;
            float *y = speak_request(t, &p, text, &r, &n);
            if (y) {
                char wav[1200];
                snprintf(wav, sizeof wav, "%s/%s/%03d_%d.wav", out, name, c, q);
                if (st_audio_write_wav(wav, y, n, 16000, ST_WAV_FLOAT) == ST_OK) {
                    fprintf(f, "%s/%03d_%d.wav\t", name, c, q);
                    for (size_t i = 0; i < r.n_words; i++)
                        fprintf(f, "%s%s", i ? " " : "", r.words[i].text);
                    fprintf(f, "\t%s/%s\t", p.engine ? p.engine : "espeak", p.voice ? p.voice : "");
                    for (size_t i = 0; i < r.n_words; i++)
                        fprintf(f, "%s%.3f", i ? " " : "", r.words[i].end / 16000.0);
                    fprintf(f, "\n");
                    made++;
                }
                free(y);
            }
            st_tts_result_free(&r);
        }
        st_tts_destroy(&t);
    }
    fclose(f);
    fprintf(stderr, "asr-tool: %s: %d held-out requests\n", name, made);
    return made;
}

/* AN4's words, cut from its connected speech at the times of `asr-tool
   align` (align_path): speakers hashed as Speech Commands' (0-1 test, 2
   validation, the rest training). Vocabulary words train as their class;
   AN4's other words (numbers such as "sixty", "oh", commands such as
   "enter") as _unknown_, and its spelled letters as _unknown_ with p
   letter_p (there are ~3,000 of them). The test speakers' vocabulary words
   are written as clips to out/test_an4/ and listed in out/test_an4.tsv
   (`path text speaker`, for `spiketalk eval words`). Returns the training
   clips added, or -1. */
static long an4_words(const char *data_dir, const char *align_path, const char *out, set *train,
                      set *valid, int aug, double letter_p)
{
    FILE *f = fopen(align_path, "r");
    if (!f) {
        fprintf(stderr, "asr-tool data: --an4 %s: cannot open it (make it with `asr-tool align "
                        "%s/speech/an4 %s`)\n", align_path, data_dir, align_path);
        return -1;
    }
    char path[1024], line[2048], cur[1024] = "";
    snprintf(path, sizeof path, "%s/test_an4", out);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/test_an4.tsv", out);
    FILE *te = fopen(path, "w");
    if (!te) {
        fprintf(stderr, "asr-tool data: cannot write %s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    fprintf(te, "path\ttext\tspeaker\n");
    float *y = NULL;
    size_t n = 0, counts[3] = {0};
    long row = 0;
    while (fgets(line, sizeof line, f)) {
        if (row++ == 0)
            continue;
        char *p = line;
        char *rel = next_field(&p), *word = next_field(&p), *s0 = next_field(&p),
             *s1 = next_field(&p), *spk = next_field(&p);
        if (!rel || !word || !s0 || !s1 || !spk)
            continue;
        if (strcmp(rel, cur)) {
            free(y);
            snprintf(cur, sizeof cur, "%s", rel);
            snprintf(path, sizeof path, "%s/speech/an4/%s", data_dir, rel);
            y = load16k(path, &n);
        }
        if (!y)
            continue;
        int label = class_of(word);
        bool letter = strlen(word) == 1;
        const int split = split_of(spk);
        if (letter && urand() >= letter_p)
            continue;
        /* 50 ms either side of pocketsphinx's word */
        double a = atof(s0) - 0.05, b = atof(s1) + 0.05;
        size_t i0 = a > 0 ? (size_t)(a * 16000) : 0, i1 = (size_t)(b * 16000);
        i1 = i1 < n ? i1 : n;
        if (i1 <= i0 + 1600) /* under 0.1 s: a misalignment */
            continue;
        if (split == 2) {
            if (label == ST_ASR_UNKNOWN)
                continue;
            snprintf(path, sizeof path, "%s/test_an4/%05zu.wav", out, counts[2]);
            char *abs = NULL;
            if (st_audio_write_wav(path, y + i0, i1 - i0, 16000, ST_WAV_PCM16) == ST_OK &&
                (abs = realpath(path, NULL)))
                fprintf(te, "%s\t%s\t%s\n", abs, word, spk);
            free(abs);
        } else if (add_clip(split ? valid : train, y + i0, i1 - i0, label, split ? 0 : aug, true,
                            split == 0)) {
            break;
        }
        counts[split]++;
    }
    free(y);
    fclose(f);
    fclose(te);
    fprintf(stderr, "asr-tool: an4: %zu train, %zu valid words, %zu test (vocabulary words of "
                    "held-out speakers, %s/test_an4.tsv)\n", counts[0], counts[1], counts[2], out);
    return (long)counts[0];
}

static int cmd_data(int argc, char **argv)
{
    const char *data_dir = "../shared/data", *out = "build/asr", *an4_align = NULL;
    double letter_p = 0.25;
    const char *norm_from = NULL;
    int n_configs = 60, aug = 1, n_req = 0, per_req = 12, req_aug = 1, sc_aug = -1;
    int n_festival = 0;
    long max_clips = 0;
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--data-dir") && a + 1 < argc)
            data_dir = argv[++a];
        else if (!strcmp(argv[a], "--out") && a + 1 < argc)
            out = argv[++a];
        else if (!strcmp(argv[a], "--configs") && a + 1 < argc)
            n_configs = (int)whole_arg("data", "--configs", argv[++a], 0, 100000, "a count");
        else if (!strcmp(argv[a], "--festival") && a + 1 < argc)
            n_festival = (int)whole_arg("data", "--festival", argv[++a], 0, 100000, "a count");
        else if (!strcmp(argv[a], "--aug") && a + 1 < argc)
            aug = (int)whole_arg("data", "--aug", argv[++a], 0, 16, "a count");
        else if (!strcmp(argv[a], "--requests") && a + 1 < argc)
            n_req = (int)whole_arg("data", "--requests", argv[++a], 0, 100000, "a count");
        else if (!strcmp(argv[a], "--per-config") && a + 1 < argc)
            per_req = (int)whole_arg("data", "--per-config", argv[++a], 1, 1000, "a count");
        else if (!strcmp(argv[a], "--request-aug") && a + 1 < argc)
            req_aug = (int)whole_arg("data", "--request-aug", argv[++a], 0, 16, "a count");
        else if (!strcmp(argv[a], "--sc-aug") && a + 1 < argc)
            sc_aug = (int)whole_arg("data", "--sc-aug", argv[++a], 0, 16, "a count");
        else if (!strcmp(argv[a], "--norm") && a + 1 < argc)
            norm_from = argv[++a];
        else if (!strcmp(argv[a], "--max-clips") && a + 1 < argc)
            max_clips = whole_arg("data", "--max-clips", argv[++a], 0, 1000000000, "a count");
        else if (!strcmp(argv[a], "--seed") && a + 1 < argc)
            rng_state ^=
                (uint64_t)whole_arg("data", "--seed", argv[++a], 0, LONG_MAX, "a number") *
                0x9E3779B97F4A7C15ull;
        else if (!strcmp(argv[a], "--ctc"))
            ctc_mode = true;
        else if (!strcmp(argv[a], "--trim") && a + 1 < argc)
            trim_p = real_arg("data", "--trim", argv[++a], 0, 1, "a share");
        else if (!strcmp(argv[a], "--synth-seeds"))
            synth_seeds = true;
        else if (!strcmp(argv[a], "--an4") && a + 1 < argc)
            an4_align = argv[++a];
        else if (!strcmp(argv[a], "--an4-letters") && a + 1 < argc)
            letter_p = real_arg("data", "--an4-letters", argv[++a], 0, 1, "a share");
        else if (!strcmp(argv[a], "--pauses") && a + 1 < argc)
            pause_p = real_arg("data", "--pauses", argv[++a], 0, 1, "a share");
        else if (!strcmp(argv[a], "--snr-min") && a + 1 < argc)
            snr_min_db = real_arg("data", "--snr-min", argv[++a], -20, 25, "a level in dB");
        else {
            fprintf(stderr, "asr-tool data: unknown option '%s'\n", argv[a]);
            return 2;
        }
    }
    float mean[MELS], std[MELS]; /* the normalisation: --norm's, or this set's (below) */
    if (norm_from && load_norm(norm_from, mean, std) != ST_OK) {
        fprintf(stderr, "asr-tool data: --norm %s: %s\n", norm_from, st_errmsg());
        return 1;
    }
    mkdir(out, 0755);
    int err = 0;
    st_frontend_params fp = st_frontend_default_params();
    fe = st_frontend_new(&fp, &err);
    if (!fe)
        return 1;
    set train = {0}, valid = {0};
    char path[1024], line[2048];

    /* Speech Commands: silence clips first (noise bank, silence class) */
    snprintf(path, sizeof path, "%s/speech/speech_commands/manifest.tsv", data_dir);
    FILE *sc = fopen(path, "r");
    snprintf(path, sizeof path, "%s/test_sc12.tsv", out);
    FILE *tsc = fopen(path, "w");
    snprintf(path, sizeof path, "%s/valid_sc12.tsv", out);
    FILE *vsc = fopen(path, "w");
    snprintf(path, sizeof path, "%s/test_fsdd.tsv", out);
    FILE *tfs = fopen(path, "w");
    if (!tsc || !vsc || !tfs) {
        fprintf(stderr, "asr-tool data: cannot write the test manifests in '%s': %s\n", out,
                strerror(errno));
        return 1;
    }
    fprintf(tsc, "path\tlabel12\tword\tspeaker\n");
    fprintf(vsc, "path\tlabel12\tword\tspeaker\n");
    fprintf(tfs, "path\ttext\tspeaker\n");
    size_t counts[3] = {0};
    if (sc) {
        noise_train.clips = calloc(4096, sizeof(float *));
        noise_train.len = calloc(4096, sizeof(size_t));
        char *silence[4096];
        size_t n_sil = 0;
        long row = 0;
        while (fgets(line, sizeof line, sc)) {
            if (row++ == 0)
                continue;
            char *p = line;
            char *rel = next_field(&p), *label12 = next_field(&p), *word = next_field(&p),
                 *spk = next_field(&p);
            if (!rel || !label12)
                continue;
            char full[1536];
            snprintf(full, sizeof full, "%s/speech/speech_commands/%s", data_dir, rel);
            char *abs = realpath(full, NULL);
            if (!abs)
                continue;
            bool is_sil = !strcmp(label12, "_silence_");
            const int split = split_of(is_sil ? rel : (spk ? spk : rel)); /* 2 test, 1 valid */
            if (split == 2) {
                fprintf(tsc, "%s\t%s\t%s\t%s\n", abs, label12, word ? word : "", spk ? spk : "");
                counts[2]++;
                free(abs);
                continue;
            }
            if (split == 1) /* the validation speakers, for `eval sc12` too */
                fprintf(vsc, "%s\t%s\t%s\t%s\n", abs, label12, word ? word : "", spk ? spk : "");
            if (max_clips && (long)(train.n + valid.n) > max_clips) {
                free(abs);
                continue;
            }
            size_t n = 0;
            float *y = load16k(abs, &n);
            if (!y) {
                free(abs);
                continue;
            }
            if (is_sil) {
                if (split == 0 && noise_train.n < 4096) {
                    noise_train.clips[noise_train.n] = y;
                    noise_train.len[noise_train.n++] = n;
                    silence[n_sil++] = abs;
                    continue;
                }
                add_clip(&valid, y, n, ST_ASR_SILENCE, 0, true, false);
                free(y);
                free(abs);
                continue;
            }
            int label = class_of(word && *word ? word : label12);
            if (split == 0)
                add_clip(&train, y, n, label, sc_aug >= 0 ? sc_aug : aug, true, false);
            else
                add_clip(&valid, y, n, label, 0, true, false);
            counts[split]++;
            free(y);
            free(abs);
        }
        fclose(sc);
        /* silence / noise examples: noise clips at random levels */
        for (size_t k = 0; k < n_sil; k++) {
            for (int r = 0; r < 2; r++) {
                size_t n = noise_train.len[k];
                float *y = malloc(n * sizeof *y);
                float g = (float)pow(10, uniform(-40, 10) / 20);
                for (size_t i = 0; i < n; i++)
                    y[i] = g * noise_train.clips[k][i];
                maybe_trim(y, &n); /* noise cut short is silence too */
                add_clip(&train, y, n, ST_ASR_SILENCE, 0, true, true);
                free(y);
            }
            free(silence[k]);
        }
        fprintf(stderr, "asr-tool: speech commands: %zu train, %zu valid, %zu test clips; %zu noise clips\n",
                counts[0], counts[1], counts[2], noise_train.n);
    } else {
        fprintf(stderr, "asr-tool: no %s/speech: synthetic words only\n", data_dir);
    }

    /* FSDD: speaker lucas held out */
    snprintf(path, sizeof path, "%s/speech/fsdd/manifest.tsv", data_dir);
    FILE *fs = fopen(path, "r");
    if (fs) {
        long row = 0;
        size_t n_tr = 0, n_te = 0;
        while (fgets(line, sizeof line, fs)) {
            if (row++ == 0)
                continue;
            char *p = line;
            char *rel = next_field(&p), *text = next_field(&p), *spk = next_field(&p);
            if (!rel || !text || !spk)
                continue;
            char full[1536];
            snprintf(full, sizeof full, "%s/speech/fsdd/%s", data_dir, rel);
            char *abs = realpath(full, NULL);
            if (!abs)
                continue;
            if (!strcmp(spk, "lucas")) {
                fprintf(tfs, "%s\t%s\t%s\n", abs, text, spk);
                n_te++;
            } else if (!max_clips || (long)n_tr * 4 < max_clips) {
                size_t n = 0;
                float *y = load16k(abs, &n);
                if (y) {
                    /* half the takes: the set is 4 speakers, keep it from dominating */
                    if (rnd() % 2 == 0)
                        add_clip(&train, y, n, class_of(text), aug, true, true);
                    free(y);
                    n_tr++;
                }
            }
            free(abs);
        }
        fclose(fs);
        fprintf(stderr, "asr-tool: fsdd: %zu train takes seen, %zu test (speaker lucas)\n", n_tr,
                n_te);
    }
    fclose(tsc);
    fclose(vsc);
    fclose(tfs);
    if (an4_align && an4_words(data_dir, an4_align, out, &train, &valid, aug, letter_p) < 0)
        return 1;

    int made = synth_words(&train, n_configs, aug < 1 ? 1 : aug, n_req > 0);
    fprintf(stderr, "asr-tool: %d synthetic words\n", made);
    if (n_festival > 0) {
        if ((made = festival_words(&train, n_festival, aug < 1 ? 1 : aug)) < 0)
            return 1;
        fprintf(stderr, "asr-tool: %d festival words\n", made);
    }
    if (n_req > 0) {
        made = synth_requests(&train, n_req, per_req, req_aug, 0);
        fprintf(stderr, "asr-tool: %d training windows of whole requests\n", made);
        made = synth_requests(&valid, n_req / 5 + 1, per_req, 0, 1);
        fprintf(stderr, "asr-tool: %d validation windows of whole requests\n", made);
    }
    /* the held-out request sets, also for a recipe without requests */
    int n_eval = n_req > 0 ? n_req : 100;
    if (write_requests(out, "valid_requests", 1, n_eval / 5 + 1, 5) < 0 ||
        write_requests(out, "test_requests", 2, n_eval / 2 + 1, 5) < 0)
        fprintf(stderr, "asr-tool: cannot write the held-out requests under %s\n", out);

    /* normalisation from the training set, unless --norm gave one */
    if (!norm_from) {
        double sum[MELS] = {0}, sq[MELS] = {0};
        size_t cnt = 0;
        for (size_t k = 0; k < train.n; k++)
            for (size_t t = 0; t < train.steps[k]; t++, cnt++)
                for (int c = 0; c < MELS; c++) {
                    double v = train.x[(k * slot_frames() + t) * MELS + c];
                    sum[c] += v;
                    sq[c] += v * v;
                }
        cnt = cnt ? cnt : 1;
        for (int c = 0; c < MELS; c++) {
            mean[c] = (float)(sum[c] / (double)cnt);
            double var = sq[c] / (double)cnt - (double)mean[c] * mean[c];
            std[c] = (float)sqrt(var > 1e-6 ? var : 1e-6);
        }
    }
    st_tensor_file *nf = st_tensor_file_new("asr-norm", &err);
    uint64_t dims[1] = {MELS};
    st_tensor_file_add(nf, "feat_mean", ST_DTYPE_F32, 1, dims, mean);
    st_tensor_file_add(nf, "feat_std", ST_DTYPE_F32, 1, dims, std);
    snprintf(path, sizeof path, "%s/norm.stf", out);
    err = st_tensor_file_save(nf, path);
    st_tensor_file_destroy(&nf);
    if (valid.n == 0) /* no shared data: hold out a slice of the synthetic words */
        for (size_t k = 0; k < train.n; k += 10)
            set_push_seq(&valid, train.x + k * slot_frames() * MELS, train.steps[k],
                         ctc_mode ? train.seq[k] : &train.label[k], ctc_mode ? train.n_lab[k] : 1);
    snprintf(path, sizeof path, "%s/train.std", out);
    if (!err)
        err = save_set(&train, path, mean, std);
    snprintf(path, sizeof path, "%s/valid.std", out);
    if (!err)
        err = save_set(&valid, path, mean, std);
    if (err)
        fprintf(stderr, "asr-tool: %s\n", st_errmsg());
    size_t per[N_CLASSES] = {0};
    for (size_t k = 0; k < train.n; k++)
        per[train.label[k]]++;
    fprintf(stderr, "asr-tool: %zu training, %zu validation samples; per class:", train.n, valid.n);
    for (size_t k = 0; k < N_CLASSES; k++)
        fprintf(stderr, " %s=%zu", CLASSES[k], per[k]);
    fprintf(stderr, "\n");
    for (size_t k = 0; k < noise_train.n; k++)
        free(noise_train.clips[k]);
    free(noise_train.clips);
    free(noise_train.len);
    set_free(&train);
    set_free(&valid);
    st_frontend_destroy(&fe);
    return err ? 1 : 0;
}

/* ---- training ---- */

static int save_model(const st_train_model *m, const char *norm_path, const char *out,
                      st_asr_pool pool, bool cmn)
{
    float mean[MELS], std[MELS];
    int err = load_norm(norm_path, mean, std);
    if (err != ST_OK)
        return err;
    st_snn_net *net = st_train_export(m, &err);
    if (!net)
        return err;
    st_asr_frontend_info fi = {.n_mels = MELS, .hop_ms = 10, .window_ms = 25};
    st_asr *asr = st_asr_new(&net, (const char *const *)CLASSES, N_CLASSES, mean, std, MELS, &fi,
                             &err);
    if (asr) {
        st_asr_set_pool(asr, pool);
        err = st_asr_set_cmn(asr, cmn);
        err = err ? err : st_asr_save(asr, out);
    }
    st_asr_destroy(&asr);
    return err;
}

/* The samples of *d with at most max_frames steps (--max-frames: the single
   words of a --ctc set without the whole requests; 0 all of them), each
   less its own mean per channel with cmn (--cmn: st_asr_normalise_clip's
   mean, in the same order of sums); *d is replaced. */
static st_train_data *reshaped(st_train_data **d, size_t max_frames, bool cmn)
{
    size_t n = 0, N = st_train_data_count(*d), steps, L;
    const size_t C = st_train_data_channels(*d);
    max_frames = max_frames ? max_frames : SIZE_MAX;
    for (size_t k = 0; k < N; k++)
        n += (st_train_data_input(*d, k, &steps), steps <= max_frames);
    int err = 0;
    st_train_data *out = st_train_data_new(n, st_train_data_max_steps(*d), C, &err);
    float *y = out ? malloc(st_train_data_max_steps(*d) * C * sizeof *y) : NULL;
    if (!y)
        st_train_data_destroy(&out);
    for (size_t k = 0, j = 0; out && k < N; k++) {
        const float *x = st_train_data_input(*d, k, &steps);
        if (steps > max_frames)
            continue;
        memcpy(y, x, steps * C * sizeof *y);
        if (cmn)
            st_asr_subtract_mean(y, steps, C);
        if (st_train_data_is_seq(*d)) {
            const int32_t *lab = st_train_data_labels(*d, k, &L);
            err = st_train_data_set_seq(out, j++, y, steps, lab, L);
        } else {
            err = st_train_data_set(out, j++, y, steps, st_train_data_label(*d, k));
        }
        if (err)
            st_train_data_destroy(&out);
    }
    free(y);
    st_train_data_destroy(d);
    return out;
}

static void progress(const st_train_progress *p, void *user)
{
    (void)user;
    if (p->step % 20 == 0 || p->step == p->steps)
        fprintf(stderr, "\repoch %u step %zu/%zu loss %.3f acc %.3f rate %.3f   ", p->epoch + 1,
                p->step, p->steps, p->loss, p->accuracy, p->rate);
}

static int cmd_train(int argc, char **argv)
{
    const char *dir = "build/asr", *out = "models/asr.stm", *log_path = NULL;
    const char *ckpt_path = NULL, *init_path = NULL;
    int epochs = 10, hidden = 128;
    unsigned threads = 1;
    long max_steps = 0;
    double lr = 3e-3, rate_reg = 0, clip = 1, init_scale = 1;
    bool ce_layers = false, cmn = false;
    size_t max_frames = 0;
    int warmup = 50;
    const char *loss = "ce_max", *neuron = "lsnn";
    int layers = 1;
    unsigned mask_f[2] = {0, 0}, mask_t[2] = {0, 0}; /* --mask-freq / --mask-time N:W */
    unsigned seed = 0; /* --seed: another member of an ensemble (weights, shuffles, masks) */
    double warp_t = 0, warp_f = 0; /* --warp-time / --warp-freq */
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--dir") && a + 1 < argc)
            dir = argv[++a];
        else if (!strcmp(argv[a], "--out") && a + 1 < argc)
            out = argv[++a];
        else if (!strcmp(argv[a], "--epochs") && a + 1 < argc)
            epochs = (int)whole_arg("train", "--epochs", argv[++a], 1, 100000, "a count");
        else if (!strcmp(argv[a], "--hidden") && a + 1 < argc)
            hidden = (int)whole_arg("train", "--hidden", argv[++a], 1, 65536, "a count");
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc)
            threads = (unsigned)whole_arg("train", "--threads", argv[++a], 0, 256,
                                          "a count (0: one per core)");
        else if (!strcmp(argv[a], "--max-steps") && a + 1 < argc)
            max_steps = whole_arg("train", "--max-steps", argv[++a], 0, LONG_MAX, "a count");
        else if (!strcmp(argv[a], "--lr") && a + 1 < argc)
            lr = real_arg("train", "--lr", argv[++a], 1e-9, 10, "a rate");
        else if (!strcmp(argv[a], "--loss") && a + 1 < argc)
            loss = argv[++a];
        else if (!strcmp(argv[a], "--neuron") && a + 1 < argc)
            neuron = argv[++a];
        else if (!strcmp(argv[a], "--layers") && a + 1 < argc)
            layers = (int)whole_arg("train", "--layers", argv[++a], 1, 2, "a count");
        else if (!strcmp(argv[a], "--log") && a + 1 < argc)
            log_path = argv[++a];
        else if (!strcmp(argv[a], "--checkpoint") && a + 1 < argc)
            ckpt_path = argv[++a];
        else if (!strcmp(argv[a], "--init") && a + 1 < argc)
            init_path = argv[++a];
        else if (!strcmp(argv[a], "--ce-layers"))
            ce_layers = true;
        else if (!strcmp(argv[a], "--cmn"))
            cmn = true;
        else if (!strcmp(argv[a], "--max-frames") && a + 1 < argc)
            max_frames =
                (size_t)whole_arg("train", "--max-frames", argv[++a], 0, 100000, "a count");
        else if (!strcmp(argv[a], "--clip") && a + 1 < argc)
            clip = real_arg("train", "--clip", argv[++a], 0, 1e6, "a norm");
        else if (!strcmp(argv[a], "--init-scale") && a + 1 < argc)
            init_scale = real_arg("train", "--init-scale", argv[++a], 1e-6, 1e3, "a scale");
        else if (!strcmp(argv[a], "--rate-reg") && a + 1 < argc)
            rate_reg = real_arg("train", "--rate-reg", argv[++a], 0, 1e6, "a weight");
        else if (!strcmp(argv[a], "--warmup") && a + 1 < argc)
            warmup = (int)whole_arg("train", "--warmup", argv[++a], 0, 1000000000, "a count");
        else if (!strcmp(argv[a], "--seed") && a + 1 < argc)
            seed = (unsigned)whole_arg("train", "--seed", argv[++a], 0, 1000000, "a number");
        else if (!strcmp(argv[a], "--warp-time") && a + 1 < argc)
            warp_t = real_arg("train", "--warp-time", argv[++a], 0, 0.5, "a fraction");
        else if (!strcmp(argv[a], "--warp-freq") && a + 1 < argc)
            warp_f = real_arg("train", "--warp-freq", argv[++a], 0, 0.5, "a fraction");
        else if ((!strcmp(argv[a], "--mask-freq") || !strcmp(argv[a], "--mask-time")) &&
                 a + 1 < argc) {
            unsigned *mk = argv[a][7] == 'f' ? mask_f : mask_t;
            char tail;
            if (sscanf(argv[a + 1], "%u:%u%c", &mk[0], &mk[1], &tail) != 2 || mk[0] > 8 ||
                mk[1] > 200) {
                fprintf(stderr, "asr-tool train: %s wants N:W (N masks of 0 to W channels or "
                        "frames; N <= 8, W <= 200), not '%s'\n", argv[a], argv[a + 1]);
                return 2;
            }
            a++;
        } else {
            fprintf(stderr, "asr-tool train: unknown option '%s'\n", argv[a]);
            return 2;
        }
    }
    if (cmn && !strcmp(loss, "ctc")) {
        fprintf(stderr, "asr-tool train: --cmn needs whole clips; a ctc model steps frame by "
                "frame (use --loss ce_mean or ce_max)\n");
        return 2;
    }
    char path[1024], norm[1024];
    int err = 0;
    snprintf(path, sizeof path, "%s/train.std", dir);
    st_train_data *tr = st_train_data_load(path, &err);
    snprintf(path, sizeof path, "%s/valid.std", dir);
    st_train_data *va = st_train_data_load(path, &err);
    snprintf(norm, sizeof norm, "%s/norm.stf", dir);
    if (!tr || !va) {
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
        return 1;
    }
    if ((max_frames || cmn) &&
        (!(tr = reshaped(&tr, max_frames, cmn)) || !(va = reshaped(&va, max_frames, cmn)))) {
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
        return 1;
    }
    st_train_layer_params L[3];
    for (int k = 0; k < layers; k++) {
        L[k] = st_train_layer_default_params(ST_TRAIN_DENSE);
        snprintf(L[k].name, sizeof L[k].name, k ? "hidden%d" : "hidden", k + 1);
        L[k].neurons = (size_t)hidden;
        L[k].recurrent = true;
        L[k].neuron = st_snn_neuron_default_params(strcmp(neuron, "lif") ? ST_SNN_LSNN : ST_SNN_LIF);
        L[k].neuron.dt = 0.01;
        L[k].neuron.tau_syn_inv = 50;   /* 20 ms */
        L[k].neuron.tau_mem_inv = 20;   /* 50 ms */
        L[k].neuron.tau_adapt_inv = 2;  /* 500 ms */
        L[k].neuron.beta = 0.5f;
        L[k].train_tau = true;
        L[k].rec_scale = 0.5f;
        L[k].init_scale = (float)init_scale;
    }
    L[layers] = st_train_layer_default_params(ST_TRAIN_DENSE);
    snprintf(L[layers].name, sizeof L[layers].name, "readout");
    L[layers].neurons = N_CLASSES;
    L[layers].neuron = st_snn_neuron_default_params(ST_SNN_LI);
    L[layers].neuron.dt = 0.01;
    L[layers].neuron.tau_syn_inv = 50;
    L[layers].neuron.tau_mem_inv = 20;
    L[layers].train_tau = true;
    if (!strcmp(loss, "ctc") && !ce_layers) {
        /* CTC on a spiking net (docs/TRAINING.md, "CTC"): a memoryless
           read-out (its logit W z(t) + b at every step, the first included)
           and no bias in the hidden layers, else the first steps from rest
           give input-independent outputs where CTC puts the labels, and
           learning stalls there (measured: the prior, 10 %, for 8 epochs).
           --ce-layers keeps the cross-entropy layers (an --init from a
           cross-entropy checkpoint). */
        for (int k = 0; k < layers; k++)
            L[k].bias = false;
        L[layers].neuron.tau_syn_inv = 100; /* 1/dt */
        L[layers].neuron.tau_mem_inv = 100;
        L[layers].train_tau = false;
        L[layers].init_scale = 4;
    }
    st_train_model *m = st_train_model_new(MELS, L, (size_t)layers + 1, 7 + seed, &err);
    if (!m) {
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
        return 1;
    }
    st_train_params p = st_train_default_params();
    if (st_train_loss_from_name(loss, &p.loss) != ST_OK) {
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
        return 2;
    }
    /* ctc: class 0 (_silence_) is the blank, the data's labels are the classes - 1 */
    p.ctc_blank = 0;
    const st_asr_pool pool = p.loss == ST_TRAIN_LOSS_CTC       ? ST_ASR_POOL_CTC
                             : p.loss == ST_TRAIN_LOSS_CE_MEAN ? ST_ASR_POOL_MEAN
                                                               : ST_ASR_POOL_MAX;
    p.optimizer = ST_TRAIN_ADAMW;
    p.lr = (float)lr;
    p.lr_min = (float)(lr / 20);
    p.weight_decay = 1e-4f;
    p.clip_norm = (float)clip;
    p.batch = 32;
    p.chunk = 8;
    p.threads = threads;
    p.warmup_steps = max_steps ? 0 : (uint32_t)warmup;
    p.rate_reg = (float)rate_reg; /* towards rate_target spikes per neuron and step */
    p.rate_target = 0.05f;
    p.seed = 1 + seed;
    p.mask_freq = mask_f[0];
    p.mask_freq_width = mask_f[1];
    p.mask_time = mask_t[0];
    p.mask_time_width = mask_t[1];
    p.warp_time = (float)warp_t;
    p.warp_freq = (float)warp_f;
    size_t steps_per_epoch = (st_train_data_count(tr) + p.batch - 1) / p.batch;
    p.decay_steps = max_steps ? (uint64_t)max_steps : steps_per_epoch * (size_t)epochs;
    if (init_path) {
        /* the weights of another run's checkpoint (same layers; e.g. a
           cross-entropy run before CTC), not its optimizer or schedule */
        st_train_params q = st_train_default_params();
        q.threads = 1;
        st_train *src = st_train_new(m, &q, &err);
        if (!src || st_train_load(src, init_path) != ST_OK) {
            fprintf(stderr, "asr-tool train: --init %s: %s\n", init_path, st_errmsg());
            return 1;
        }
        fprintf(stderr, "asr-tool train: weights from %s\n", init_path);
        if (!strcmp(loss, "ctc")) {
            /* a cross-entropy read-out never made _silence_ the usual answer;
               CTC wants the blank on most frames: raise its bias by the
               amount that gives the validation set the lowest CTC loss, so
               that the labels start where the words are */
            st_train_tensor b;
            q.loss = ST_TRAIN_LOSS_CTC;
            st_train *probe = st_train_model_param_find(m, "readout.b", &b) == ST_OK
                                  ? st_train_new(m, &q, &err)
                                  : NULL;
            float b0 = probe ? b.data[0] : 0, best_x = 0;
            double best_loss = INFINITY;
            for (float x = 0; probe && x <= 20; x += 2) {
                st_train_stats vs0 = {0};
                b.data[0] = b0 + x;
                st_train_model_changed(m);
                if (st_train_evaluate(probe, va, &vs0) == ST_OK && vs0.loss < best_loss) {
                    best_loss = vs0.loss;
                    best_x = x;
                }
                fprintf(stderr, "asr-tool train: blank bias +%g: valid ctc loss %.3f\n", x, vs0.loss);
            }
            if (probe) {
                b.data[0] = b0 + best_x;
                st_train_model_changed(m);
            }
            st_train_destroy(&probe);
        }
        st_train_destroy(&src);
    }
    st_train *t = st_train_new(m, &p, &err);
    if (!t || st_train_check_data(t, tr, "training data") || st_train_check_data(t, va, "validation")) {
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
        return 1;
    }
    fprintf(stderr, "asr-tool train: %zu train, %zu valid samples, %zu parameters\n",
            st_train_data_count(tr), st_train_data_count(va), st_train_model_param_total(m));
    double best = -1;
    st_train_stats vs;
    if (max_steps) {
        /* smoke: a few steps on the first samples, loss before and after */
        size_t idx[32];
        for (size_t i = 0; i < 32; i++)
            idx[i] = i % st_train_data_count(tr);
        st_train_stats s0, s1;
        for (long s = 0; s < max_steps; s++) {
            st_train_step(t, tr, idx, 32, s == 0 ? &s0 : &s1);
        }
        st_train_gradient(t, tr, idx, 32, &s1);
        printf("smoke: loss %.4f -> %.4f after %ld steps\n", s0.loss, s1.loss, max_steps);
        err = save_model(m, norm, out, pool, cmn);
    } else {
        for (int e = 0; e < epochs; e++) {
            double t0 = st_now_s();
            st_train_stats ts;
            st_train_epoch(t, tr, progress, NULL, &ts);
            st_train_evaluate(t, va, &vs);
            fprintf(stderr, "\nepoch %d: train loss %.3f acc %.3f | valid loss %.3f acc %.3f | rate %.3f | %.0f s\n",
                    e + 1, ts.loss, ts.accuracy, vs.loss, vs.accuracy, ts.rate, st_now_s() - t0);
            if (log_path) {
                st_train_log_row row = {.epoch = (uint32_t)e + 1, .steps = st_train_steps_done(t),
                                        .lr = ts.lr, .train = ts, .valid = vs,
                                        .seconds = st_now_s() - t0};
                st_train_log_append(log_path, &row);
            }
            if (vs.accuracy > best) {
                best = vs.accuracy;
                err = save_model(m, norm, out, pool, cmn);
                if (!err && ckpt_path)
                    err = st_train_save(t, ckpt_path, NULL);
                fprintf(stderr, "saved %s (valid acc %.3f)\n", out, best);
            }
        }
    }
    if (err)
        fprintf(stderr, "asr-tool train: %s\n", st_errmsg());
    st_train_destroy(&t);
    st_train_model_destroy(&m);
    st_train_data_destroy(&tr);
    st_train_data_destroy(&va);
    return err ? 1 : 0;
}

static int cmd_rule(int argc, char **argv)
{
    const char *model = NULL;
    size_t tail = 0;
    st_asr_decider_params q = st_asr_stream_default_params();
    for (int a = 2; a < argc; a++) {
        if (a + 1 >= argc) {
            fprintf(stderr, "asr-tool rule: option '%s' needs a value\n", argv[a]);
            return 2;
        }
        if (!strcmp(argv[a], "--model"))
            model = argv[++a];
        else if (!strcmp(argv[a], "--on"))
            q.on_threshold = (float)real_arg("rule", "--on", argv[++a], 0, 1, "a probability");
        else if (!strcmp(argv[a], "--off"))
            q.off_threshold =
                (float)real_arg("rule", "--off", argv[++a], 0, 1, "a probability");
        else if (!strcmp(argv[a], "--min"))
            q.min_frames = (int)whole_arg("rule", "--min", argv[++a], 1, 1000, "a count");
        else if (!strcmp(argv[a], "--refractory"))
            q.refractory_frames =
                (int)whole_arg("rule", "--refractory", argv[++a], 0, 1000, "a count");
        else if (!strcmp(argv[a], "--tail"))
            tail = (size_t)whole_arg("rule", "--tail", argv[++a], 0, 1000, "a count");
        else {
            fprintf(stderr, "asr-tool rule: unknown option '%s'\n", argv[a]);
            return 2;
        }
    }
    int err = 0;
    st_asr *m = model ? st_asr_load(model, &err) : NULL;
    if (!m) {
        fprintf(stderr, "asr-tool rule: %s\n", model ? st_errmsg() : "--model MODEL is required");
        return 1;
    }
    st_asr_set_stream(m, &q, tail);
    err = st_asr_save(m, model);
    if (err)
        fprintf(stderr, "asr-tool rule: %s\n", st_errmsg());
    st_asr_destroy(&m);
    return err ? 1 : 0;
}

/* `asr-tool lm`: the word bigram of the agent's requests (see the file
   comment), into the model. */
static int cmd_lm(int argc, char **argv)
{
    const char *model = NULL, *out = NULL;
    long n_requests = 20000, per_word = 100;
    double mix = 0.9;
    uint64_t seed = 1;
    st_asr_lm_params q = st_asr_lm_default_params();
    for (int a = 2; a < argc; a++) {
        if (a + 1 >= argc) {
            fprintf(stderr, "asr-tool lm: option '%s' needs a value\n", argv[a]);
            return 2;
        }
        const char *o = argv[a], *v = argv[++a];
        if (!strcmp(o, "--model"))
            model = v;
        else if (!strcmp(o, "--out"))
            out = v;
        else if (!strcmp(o, "--requests"))
            n_requests = whole_arg("lm", "--requests", v, 1, 10000000, "a count");
        else if (!strcmp(o, "--per-word"))
            per_word = whole_arg("lm", "--per-word", v, 0, 10000000, "a count");
        else if (!strcmp(o, "--mix"))
            mix = real_arg("lm", "--mix", v, 0, 1, "a share");
        else if (!strcmp(o, "--seed"))
            seed = (uint64_t)whole_arg("lm", "--seed", v, 0, LONG_MAX, "a number");
        else if (!strcmp(o, "--alpha"))
            q.alpha = (float)real_arg("lm", "--alpha", v, 0, 100, "a weight");
        else if (!strcmp(o, "--beta"))
            q.beta = (float)real_arg("lm", "--beta", v, -100, 100, "a weight");
        else if (!strcmp(o, "--margin"))
            q.margin = (float)real_arg("lm", "--margin", v, 0, 1000, "a margin");
        else if (!strcmp(o, "--beam"))
            q.beam = (int)whole_arg("lm", "--beam", v, 1, ST_ASR_BEAM_MAX, "a count");
        else {
            fprintf(stderr, "asr-tool lm: unknown option '%s'\n", o);
            return 2;
        }
    }
    if (n_requests < 1 || per_word < 0 || !(mix > 0 && mix < 1)) {
        fprintf(stderr, "asr-tool lm: --requests >= 1, --per-word >= 0, 0 < --mix < 1\n");
        return 2;
    }
    int err = 0;
    st_asr *m = model ? st_asr_load(model, &err) : NULL;
    if (!m) {
        fprintf(stderr, "asr-tool lm: %s\n", model ? st_errmsg() : "--model MODEL is required");
        return 1;
    }
    size_t C = st_asr_classes(m);
    if (C != N_CLASSES) {
        fprintf(stderr, "asr-tool lm: %s has %zu classes, this recipe's vocabulary %zu\n", model,
                C, (size_t)N_CLASSES);
        st_asr_destroy(&m);
        return 1;
    }
    /* counts: row = the label before (0 the start), column = the next (0 the end) */
    double *cnt = calloc(C * C, sizeof *cnt), *uni = calloc(C, sizeof *uni);
    float *logp = malloc(C * C * sizeof *logp);
    if (!cnt || !uni || !logp) {
        fprintf(stderr, "asr-tool lm: out of memory\n");
        free(cnt), free(uni), free(logp);
        st_asr_destroy(&m);
        return 1;
    }
    rng_state = 88172645463325252ull ^ (seed * 0x9e3779b97f4a7c15ull);
    long sentences = n_requests + per_word * (long)(C - 1);
    for (long k = 0; k < sentences; k++) {
        char text[256];
        if (k < n_requests)
            make_request(text, sizeof text);
        else /* each label alone: the single words the net also trains on */
            snprintf(text, sizeof text, "%s", CLASSES[1 + (k - n_requests) / per_word]);
        size_t prev = 0;
        char *save = NULL;
        for (char *w = strtok_r(text, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            size_t c = !strcmp(w, "_unknown_") ? ST_ASR_UNKNOWN : (size_t)class_of(w);
            cnt[prev * C + c]++;
            uni[c]++;
            prev = c;
        }
        cnt[prev * C + 0]++;
        uni[0]++;
    }
    /* interpolated with the unigram (add one half), a fixed weight: words
       in an order the templates never make keep a fair chance */
    double total = 0;
    for (size_t c = 0; c < C; c++)
        total += uni[c] + 0.5;
    for (size_t a = 0; a < C; a++) {
        double row = 0;
        for (size_t c = 0; c < C; c++)
            row += cnt[a * C + c];
        for (size_t c = 0; c < C; c++) {
            double pu = (uni[c] + 0.5) / total;
            double pb = row > 0 ? cnt[a * C + c] / row : pu;
            logp[a * C + c] = (float)log(mix * pb + (1 - mix) * pu);
        }
    }
    err = st_asr_set_lm(m, logp, &q);
    if (!err)
        err = st_asr_save(m, out ? out : model);
    if (err)
        fprintf(stderr, "asr-tool lm: %s\n", st_errmsg());
    else
        printf("asr-tool lm: %ld requests, %ld single labels: bigram over %zu labels, alpha %g "
               "beta %g margin %g beam %d -> %s\n",
               n_requests, per_word * (long)(C - 1), C, q.alpha, q.beta, q.margin, q.beam,
               out ? out : model);
    free(cnt), free(uni), free(logp);
    st_asr_destroy(&m);
    return err ? 1 : 0;
}

/* asr-tool merge --out M A.stm B.stm ...: the members as one recognizer
   (st_asr_ensemble). */
static int cmd_merge(int argc, char **argv)
{
    const char *out = NULL;
    st_asr *own[64];
    size_t k = 0;
    int rc = 1;
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--out") && a + 1 < argc) {
            out = argv[++a];
            continue;
        }
        int err = 0;
        if (k == 64 || !(own[k] = st_asr_load(argv[a], &err))) {
            fprintf(stderr, "asr-tool merge: %s: %s\n", argv[a],
                    k == 64 ? "more than 64 members" : st_errmsg());
            goto done;
        }
        k++;
    }
    if (!out || k == 0) {
        fprintf(stderr, "usage: asr-tool merge --out MODEL MEMBER.stm [MEMBER.stm ...]\n");
        goto done;
    }
    int err = 0;
    st_asr *e = st_asr_ensemble((const st_asr *const *)own, k, &err);
    if (!e || st_asr_save(e, out) != ST_OK) {
        fprintf(stderr, "asr-tool merge: %s\n", st_errmsg());
    } else {
        fprintf(stderr, "asr-tool merge: %zu recognizers as one in %s (%zu weights)\n", k, out,
                st_asr_param_count(e));
        rc = 0;
    }
    st_asr_destroy(&e);
done:
    for (size_t i = 0; i < k; i++)
        st_asr_destroy(&own[i]);
    return rc;
}

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

/* `asr-tool --help`: every command; `asr-tool CMD --help`: that one. */
static int help(FILE *out, const char *cmd)
{
    size_t n = sizeof HELP / sizeof HELP[0];
    if (!cmd)
        fprintf(out, "usage: asr-tool data|align|merge|train|rule|lm [options]\n"
                     "The recognizer's recipe (make asr-data, make train-asr; models/README.md).\n\n");
    for (size_t k = 0; k < n; k++)
        if (!cmd || !strcmp(cmd, HELP[k].name))
            fputs(HELP[k].text, out);
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && is_help(argv[1]))
        return help(stdout, NULL);
    for (int a = 2; a < argc; a++)
        if (is_help(argv[a]))
            return help(stdout, argv[1]);
    if (argc >= 2 && !strcmp(argv[1], "lm"))
        return cmd_lm(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "rule"))
        return cmd_rule(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "data"))
        return cmd_data(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "train"))
        return cmd_train(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "merge"))
        return cmd_merge(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "align"))
        return asr_align_an4(argv[2], argv[3]) ? 1 : 0;
    if (argc >= 2 && strcmp(argv[1], "align"))
        fprintf(stderr, "asr-tool: unknown command '%s'\n\n", argv[1]);
    else if (argc >= 2)
        fprintf(stderr, "asr-tool align takes two arguments, AN4's folder and the output\n\n");
    return help(stderr, NULL);
}
