/*  cli/lm_train_cmd.c - `spiketalk lm train` and `spiketalk lm eval`:
    training the spiking language model (or its dense twin) on a text file
    with the C trainer (snn/lm_train.h), and its held-out figure in nats
    and bits per character, measured with the inference engine.

    A run is bounded by steps, by minutes of training, or both (the cosine
    schedule then follows whichever ends first, so a run bounded by time
    still ends at lr_min). The held-out part is the end of the file; the
    time spent evaluating it is not training time and is reported apart.
*/
#include "cli.h"

#include "snn/dialogue.h"
#include "snn/lm.h"
#include "snn/lm_train.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared ------------------------------------------------------------------ */

static char *slurp(const char *me, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    char *buf = NULL;
    if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
        fclose(f);
        return buf;
    }
    cli_fail(me, "cannot read '%s'", path);
    free(buf);
    if (f)
        fclose(f);
    return NULL;
}

/* The byte where the last `fraction` of the text begins, on a line start
   when one is near (else a UTF-8 boundary). */
static size_t holdout_at(const char *text, size_t len, double fraction)
{
    if (fraction <= 0)
        return len;
    size_t at = (size_t)((double)len * (1.0 - fraction));
    for (size_t nl = at; nl > 0 && nl < len && nl < at + 256; nl++)
        if (text[nl - 1] == '\n')
            return nl;
    while (at < len && ((unsigned char)text[at] & 0xC0) == 0x80)
        at++;
    return at;
}

static size_t count_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Held-out figure: nats over the text's predictions, and the characters
   they predict (all but the first token's). */
static int eval_text(const char *me, const st_lm_model *m, const char *text, size_t len,
                     double *nats, size_t *chars, size_t *tokens, double *seconds)
{
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n = 0, unk = 0;
    double t0 = st_now_s();
    int e = st_lm_encode_records(tok, text, len, NULL, NULL, &ids, NULL, &n, NULL, NULL, &unk);
    if (e)
        return cli_fail_lib(me, e, "encoding the held-out text");
    if (n < 2) {
        free(ids);
        return cli_fail(me, "the held-out text makes %zu tokens (at least 2 needed)", n);
    }
    e = st_lm_eval_tokens(m, ids, n, nats);
    size_t first_len = 0;
    st_lm_tokenizer_piece(tok, ids[0], &first_len);
    if (ids[0] == st_lm_tokenizer_unk(tok))
        first_len = 1;
    free(ids);
    if (e)
        return cli_fail_lib(me, e, "evaluating");
    *chars = count_chars(text, len) - count_chars(text, first_len < len ? first_len : len);
    *tokens = n - 1;
    *seconds = st_now_s() - t0;
    return 0;
}

/* "\n" and "\t" escapes in a command-line separator */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1] == 'n')
            *o++ = '\n', s++;
        else if (*s == '\\' && s[1] == 't')
            *o++ = '\t', s++;
        else
            *o++ = *s;
    }
    *o = '\0';
}

/* ---- lm train ----------------------------------------------------------------- */

static void train_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm train --text FILE --out MODEL [--steps N] [--minutes M]\n"
            "           [--dense] [--layers L] [--embd D] [--ffn F] [--words N]\n"
            "           [--holdout F] [--records SEP] [--seq-len T] [--batch B] [options]\n"
            "\n"
            "Trains SpikeGPT (or, with --dense, its RWKV-4 twin) on a text file with\n"
            "backpropagation through time in C (docs/LM.md, \"Training\"): SpikeGPT's\n"
            "recipe by default - Adam betas 0.9/0.99, eps 4e-9, cosine from 6e-4 to 1e-5,\n"
            "gradient norm clipped to 1.0, L2Wrap 1e-4, ATan surrogate (alpha 2) for the\n"
            "LIF neurons and the binary embedding - on chunks of T tokens with the state\n"
            "carried (detached) from chunk to chunk. The last F of the file is held out\n"
            "and measured at the end (nats and bits per character, the inference engine).\n"
            "A progress bar goes to stderr; the summary to stdout.\n"
            "\n"
            "model:\n"
            "  --layers L         blocks (default 4)\n"
            "  --embd D           width (default 128)\n"
            "  --ffn F            channel-mix width (default 4 D)\n"
            "  --dense            the dense RWKV-4 control (no LIF, real embedding)\n"
            "  --words N          word-piece vocabulary: the characters plus the N most\n"
            "                     useful words (default 0: characters only)\n"
            "  --max-chars N      characters in the vocabulary at most (default 256)\n"
            "  --init-seed S      initial weights (default 1)\n"
            "data:\n"
            "  --text FILE        UTF-8 text\n"
            "  --holdout F        fraction held out at the end (default 0.1; 0: none)\n"
            "  --records SEP      the text is records ending with SEP (\\n escapes, e.g.\n"
            "                     \"\\n\\n\"): each sequence starts at a random record from a\n"
            "                     fresh state (sets --sampling random)\n"
            "  --sampling S       streams (default: state carried) or random\n"
            "  --agent-only       the text is \"user:\" / \"agent:\" transcripts: only what\n"
            "                     the agent writes is a target (not the user's lines, not\n"
            "                     the tool results the runtime feeds in)\n"
            "run:\n"
            "  --steps N          optimizer steps (the cosine's length)\n"
            "  --minutes M        training time limit (the cosine follows the clock)\n"
            "  --seq-len T        tokens per chunk of BPTT (default 128)\n"
            "  --batch B          sequences per step (default 16)\n"
            "  --lr X --lr-min X  peak and final learning rate (6e-4, 1e-5)\n"
            "  --warmup N         warm-up steps (default 0)\n"
            "  --beta1 X --beta2 X --eps X   Adam's (0.9, 0.99, 4e-9)\n"
            "  --weight-decay X   AdamW's decoupled decay on the matrices (default 0)\n"
            "  --clip X           gradient norm limit (default 1; 0 off)\n"
            "  --logit-l2 X       SpikeGPT's L2Wrap factor (default 1e-4)\n"
            "  --detach-reset     no gradient through the LIF reset\n"
            "  --threads N        workers (default 0: one per core); results do not\n"
            "                     depend on it\n"
            "  --seed S           batches (random sampling; default 1)\n"
            "output:\n"
            "  --out MODEL        the trained model (our format, with its tokenizer)\n"
            "  --log FILE         CSV: step,tokens,lr,train_loss,grad_norm,spike_rate,\n"
            "                     valid_loss,seconds\n"
            "  --log-every N      steps between log rows (default 50)\n"
            "  --eval-every N     held-out loss every N steps (default 0: at the end)\n"
            "  --checkpoint FILE  saved every --checkpoint-every steps and at the end\n"
            "  --checkpoint-every N  (default 500)\n"
            "  --resume FILE      continue a checkpoint (same data and options)\n"
            "\n"
            "example (the quality figure, `make train-lm`):\n"
            "  spiketalk lm train --text ../shared/data/text/tinyshakespeare.txt \\\n"
            "      --out shakespeare.stnn --minutes 15 --log shakespeare.csv\n");
}

typedef struct {
    const char *text, *out, *log, *ckpt, *resume, *records;
    long layers, embd, ffn, words, max_chars, steps, log_every, eval_every, ckpt_every, init_seed;
    double minutes, holdout;
    bool dense, agent_only;
    st_lm_train_params p;
} train_opts;

int st_cmd_lm_train(int argc, char **argv)
{
    enum {
        O_TEXT = 1000, O_OUT, O_LAYERS, O_EMBD, O_FFN, O_DENSE, O_WORDS, O_MAXC, O_INIT, O_HOLD,
        O_REC, O_SAMP, O_STEPS, O_MIN, O_T, O_B, O_LR, O_LRMIN, O_WARM, O_B1, O_B2, O_EPS,
        O_WD, O_CLIP, O_L2, O_DETACH, O_THREADS, O_SEED, O_LOG, O_LOGE, O_EVALE, O_CK, O_CKE,
        O_RESUME, O_AGENT
    };
    static const struct option opts[] = {
        {"text", required_argument, 0, O_TEXT},       {"out", required_argument, 0, O_OUT},
        {"layers", required_argument, 0, O_LAYERS},   {"embd", required_argument, 0, O_EMBD},
        {"ffn", required_argument, 0, O_FFN},         {"dense", no_argument, 0, O_DENSE},
        {"words", required_argument, 0, O_WORDS},     {"max-chars", required_argument, 0, O_MAXC},
        {"init-seed", required_argument, 0, O_INIT},  {"holdout", required_argument, 0, O_HOLD},
        {"records", required_argument, 0, O_REC},     {"sampling", required_argument, 0, O_SAMP},
        {"steps", required_argument, 0, O_STEPS},     {"minutes", required_argument, 0, O_MIN},
        {"seq-len", required_argument, 0, O_T},       {"batch", required_argument, 0, O_B},
        {"lr", required_argument, 0, O_LR},           {"lr-min", required_argument, 0, O_LRMIN},
        {"warmup", required_argument, 0, O_WARM},     {"beta1", required_argument, 0, O_B1},
        {"beta2", required_argument, 0, O_B2},        {"eps", required_argument, 0, O_EPS},
        {"weight-decay", required_argument, 0, O_WD}, {"clip", required_argument, 0, O_CLIP},
        {"logit-l2", required_argument, 0, O_L2},     {"detach-reset", no_argument, 0, O_DETACH},
        {"threads", required_argument, 0, O_THREADS}, {"seed", required_argument, 0, O_SEED},
        {"log", required_argument, 0, O_LOG},         {"log-every", required_argument, 0, O_LOGE},
        {"eval-every", required_argument, 0, O_EVALE},
        {"checkpoint", required_argument, 0, O_CK},
        {"checkpoint-every", required_argument, 0, O_CKE},
        {"resume", required_argument, 0, O_RESUME},   {"agent-only", no_argument, 0, O_AGENT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *me = "lm train";
    train_opts o = {.layers = 4, .embd = 128, .ffn = 0, .max_chars = 256, .log_every = 50,
                    .ckpt_every = 500, .init_seed = 1, .holdout = 0.1,
                    .p = st_lm_train_default_params()};
    double d;
    long v;
    int c;
    optind = 1;
#define DBL(name, lo, hi, dst)                                                                   \
    do {                                                                                         \
        if (!cli_parse_double(me, name, optarg, lo, hi, &d))                                     \
            return 2;                                                                            \
        dst = d;                                                                                 \
    } while (0)
#define INT(name, lo, hi, dst)                                                                   \
    do {                                                                                         \
        if (!cli_parse_int(me, name, optarg, lo, hi, &v))                                        \
            return 2;                                                                            \
        dst = v;                                                                                 \
    } while (0)
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_TEXT: o.text = optarg; break;
        case O_OUT: o.out = optarg; break;
        case O_LAYERS: INT("--layers", 1, 64, o.layers); break;
        case O_EMBD: INT("--embd", 1, 4096, o.embd); break;
        case O_FFN: INT("--ffn", 1, 65536, o.ffn); break;
        case O_DENSE: o.dense = true; break;
        case O_WORDS: INT("--words", 0, 100000, o.words); break;
        case O_MAXC: INT("--max-chars", 2, 100000, o.max_chars); break;
        case O_INIT: INT("--init-seed", 0, 0x7fffffffL, o.init_seed); break;
        case O_HOLD: DBL("--holdout", 0, 0.9, o.holdout); break;
        case O_REC:
            unescape(optarg);
            o.records = optarg;
            o.p.sampling = ST_LM_SAMPLE_RANDOM;
            break;
        case O_SAMP:
            if (!strcmp(optarg, "streams"))
                o.p.sampling = ST_LM_SAMPLE_STREAMS;
            else if (!strcmp(optarg, "random"))
                o.p.sampling = ST_LM_SAMPLE_RANDOM;
            else
                return cli_fail(me, "--sampling: '%s' is not streams or random", optarg) + 1;
            break;
        case O_STEPS: INT("--steps", 1, 100000000L, o.steps); break;
        case O_MIN: DBL("--minutes", 0.01, 100000, o.minutes); break;
        case O_T: INT("--seq-len", 1, 65536, o.p.seq_len); break;
        case O_B: INT("--batch", 1, 4096, o.p.batch); break;
        case O_LR: DBL("--lr", 0, 1, o.p.lr); break;
        case O_LRMIN: DBL("--lr-min", 0, 1, o.p.lr_min); break;
        case O_WARM: INT("--warmup", 0, 100000000L, o.p.warmup_steps); break;
        case O_B1: DBL("--beta1", 0, 0.999999, o.p.beta1); break;
        case O_B2: DBL("--beta2", 0, 0.999999, o.p.beta2); break;
        case O_EPS: DBL("--eps", 1e-30, 0.5, o.p.eps); break;
        case O_WD: DBL("--weight-decay", 0, 0.99, o.p.weight_decay); break;
        case O_CLIP: DBL("--clip", 0, 1e6, o.p.clip_norm); break;
        case O_L2: DBL("--logit-l2", 0, 0.5, o.p.logit_l2); break;
        case O_DETACH: o.p.detach_reset = true; break;
        case O_THREADS: INT("--threads", 0, 64, o.p.threads); break;
        case O_SEED: INT("--seed", 0, 0x7fffffffL, o.p.seed); break;
        case O_LOG: o.log = optarg; break;
        case O_LOGE: INT("--log-every", 1, 100000000L, o.log_every); break;
        case O_EVALE: INT("--eval-every", 0, 100000000L, o.eval_every); break;
        case O_CK: o.ckpt = optarg; break;
        case O_CKE: INT("--checkpoint-every", 1, 100000000L, o.ckpt_every); break;
        case O_RESUME: o.resume = optarg; break;
        case O_AGENT: o.agent_only = true; break;
        case 'h': train_usage(stdout); return 0;
        default: train_usage(stderr); return 2;
        }
    }
#undef DBL
#undef INT
    if (optind < argc)
        return cli_fail(me, "unexpected argument '%s' (see --help)", argv[optind]) + 1;
    if (!o.text || !o.out)
        return cli_fail(me, "--text and --out are required (see --help)") + 1;
    if (!o.steps && !o.minutes)
        return cli_fail(me, "give --steps, --minutes or both (see --help)") + 1;
    if (o.p.lr_min > o.p.lr)
        return cli_fail(me, "--lr-min %g is above --lr %g", o.p.lr_min, o.p.lr) + 1;
    o.p.total_steps = (uint64_t)o.steps;

    int status = 1, err;
    size_t len;
    char *text = slurp(me, o.text, &len);
    if (!text)
        return 1;
    size_t cut = holdout_at(text, len, o.holdout);
    if (o.records && cut < len) { /* at a record's end */
        const char *r = strstr(text + cut, o.records);
        cut = r ? (size_t)(r - text) + strlen(o.records) : len;
    }
    st_lm_model *m = NULL;
    st_lm_trainer *tr = NULL;
    st_lm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    uint8_t *bmask = NULL, *tmask = NULL;
    size_t *starts = NULL, n_ids = 0, n_starts = 0;
    cli_progress bar;
    if (o.resume) {
        if (!(m = st_lm_model_load(o.resume, &err))) {
            cli_fail_lib(me, err, "loading the checkpoint");
            goto done;
        }
    } else {
        tok = o.words ? st_lm_tokenizer_words(text, cut, (size_t)o.max_chars, (size_t)o.words, &err)
                      : st_lm_tokenizer_from_corpus(text, cut, (size_t)o.max_chars, &err);
        if (!tok) {
            cli_fail_lib(me, err, "building the vocabulary");
            goto done;
        }
        st_lm_config cfg = {.n_layer = (uint32_t)o.layers,
                            .n_embd = (uint32_t)o.embd,
                            .vocab = (uint32_t)st_lm_tokenizer_size(tok),
                            .n_ffn = (uint32_t)(o.ffn ? o.ffn : 4 * o.embd),
                            .spiking = !o.dense};
        if (!(m = st_lm_model_new(&cfg, &err)) || (err = st_lm_model_set_tokenizer(m, &tok))) {
            cli_fail_lib(me, err, "making the model");
            goto done;
        }
        st_lm_train_init(m, (uint64_t)o.init_seed);
    }
    const st_lm_config *cfg = st_lm_model_config(m);
    if (o.agent_only) {
        if (!(bmask = malloc(cut ? cut : 1))) {
            cli_fail(me, "out of memory");
            goto done;
        }
        st_dialogue_answer_bytes(text, cut, bmask);
    }
    if ((err = st_lm_encode_records(st_lm_model_tokenizer(m), text, cut, o.records, bmask, &ids,
                                    o.agent_only ? &tmask : NULL, &n_ids, &starts, &n_starts,
                                    NULL))) {
        cli_fail_lib(me, err, "encoding the text");
        goto done;
    }
    if (!(tr = st_lm_trainer_new(m, &o.p, &err)) ||
        (err = st_lm_trainer_set_data(tr, ids, tmask, n_ids, o.records ? starts : NULL,
                                      o.records ? n_starts : 0))) {
        cli_fail_lib(me, err, "setting up the trainer");
        goto done;
    }
    if (o.resume && (err = st_lm_trainer_load(tr, o.resume))) {
        cli_fail_lib(me, err, "resuming");
        goto done;
    }
    size_t n_params = st_lm_model_weights(m)->n_params;
    printf("model: %s %ux%u, n_ffn %u, vocab %u: %zu parameters\n",
           cfg->spiking ? "SpikeGPT (spiking)" : "RWKV-4 (dense control)", cfg->n_layer,
           cfg->n_embd, cfg->n_ffn, cfg->vocab, n_params);
    printf("data: %zu tokens for training (%zu bytes), %zu bytes held out; T %u, batch %u, "
           "%u threads\n",
           n_ids, cut, len - cut, o.p.seq_len, o.p.batch, st_lm_trainer_threads(tr));
    fflush(stdout);

    char note[1024];
    snprintf(note, sizeof note, "spiketalk lm train --text %s%s, layers %ld embd %ld words %ld",
             o.text, o.dense ? " --dense" : "", o.layers, o.embd, o.words);
    cli_progress_init(&bar);
    double train_s = 0, eval_s = 0, budget_s = o.minutes * 60, sum_loss = 0;
    uint64_t done_steps = 0, tokens = 0;
    size_t n_loss = 0;
    for (;;) {
        uint64_t step = st_lm_trainer_steps(tr);
        double frac_steps = o.steps ? (double)step / (double)o.steps : 0;
        double frac_time = budget_s > 0 ? train_s / budget_s : 0;
        double frac = frac_steps > frac_time ? frac_steps : frac_time;
        if (frac >= 1)
            break;
        double lr = step < o.p.warmup_steps || !(budget_s > 0) ? st_lm_train_lr(&o.p, step)
                                                                : st_lm_train_lr_at(&o.p, frac);
        st_lm_train_stats st;
        if ((err = st_lm_trainer_step(tr, lr, &st))) {
            cli_progress_done(&bar);
            cli_fail_lib(me, err, "training");
            goto done;
        }
        train_s += st.seconds;
        done_steps++;
        tokens += st.tokens;
        sum_loss += st.loss;
        n_loss++;
        step = st_lm_trainer_steps(tr);
        double valid = -1;
        if (o.eval_every && step % (uint64_t)o.eval_every == 0 && cut < len) {
            double nats, es;
            size_t ch, tk;
            if (eval_text(me, m, text + cut, len - cut, &nats, &ch, &tk, &es))
                goto done;
            eval_s += es;
            valid = nats / (double)ch;
        }
        if (o.log && (step % (uint64_t)o.log_every == 0 || valid >= 0)) {
            st_lm_train_stats row = st;
            row.loss = sum_loss / (double)n_loss;
            if ((err = st_lm_train_log_append(o.log, step, tokens, &row, valid, train_s))) {
                cli_progress_done(&bar);
                cli_fail_lib(me, err, "writing the log");
                goto done;
            }
            sum_loss = 0;
            n_loss = 0;
        }
        if (o.ckpt && step % (uint64_t)o.ckpt_every == 0 &&
            (err = st_lm_trainer_save(tr, o.ckpt, note))) {
            cli_progress_done(&bar);
            cli_fail_lib(me, err, "saving the checkpoint");
            goto done;
        }
        char label[128];
        snprintf(label, sizeof label, "step %llu loss %.3f lr %.2e", (unsigned long long)step,
                 st.loss, st.lr);
        if (valid >= 0)
            snprintf(label + strlen(label), sizeof label - strlen(label), " held-out %.3f",
                     valid);
        double f1 = o.steps ? (double)step / (double)o.steps : 0;
        double f2 = budget_s > 0 ? train_s / budget_s : 0;
        cli_progress_update(&bar, f1 > f2 ? f1 : f2, label);
    }
    cli_progress_done(&bar);
    if ((err = st_lm_model_save(m, o.out))) {
        cli_fail_lib(me, err, "saving the model");
        goto done;
    }
    if (o.ckpt && (err = st_lm_trainer_save(tr, o.ckpt, note))) {
        cli_fail_lib(me, err, "saving the checkpoint");
        goto done;
    }
    printf("trained: %llu steps, %llu tokens in %.1f s of training (%.0f tokens/s)\n",
           (unsigned long long)done_steps, (unsigned long long)tokens, train_s,
           train_s > 0 ? (double)tokens / train_s : 0);
    if (cut < len) {
        double nats, es;
        size_t ch, tk;
        if (eval_text(me, m, text + cut, len - cut, &nats, &ch, &tk, &es))
            goto done;
        eval_s += es;
        printf("held-out (last %.0f %%, %zu characters): %.4f nats/char, %.4f bits/char "
               "(%.4f nats/token)\n",
               100 * o.holdout, ch, nats / (double)ch, nats / (double)ch / log(2.0),
               nats / (double)tk);
        if (o.log) {
            st_lm_train_stats row = {.lr = 0};
            st_lm_train_log_append(o.log, st_lm_trainer_steps(tr), tokens, &row,
                                   nats / (double)ch, train_s);
        }
    }
    printf("saved %s (evaluation took %.1f s more)\n", o.out, eval_s);
    status = 0;
done:
    st_lm_trainer_destroy(&tr);
    st_lm_model_destroy(&m);
    st_lm_tokenizer_destroy(&tok);
    free(ids);
    free(bmask);
    free(tmask);
    free(starts);
    free(text);
    return status;
}

/* ---- lm eval -------------------------------------------------------------------- */

static void eval_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm eval --model M --text FILE [--last F] [--dense]\n"
            "\n"
            "The model's cross-entropy on a text (from a fresh state, through the\n"
            "inference engine in the parallel mode): nats and bits per character, and\n"
            "per token.\n"
            "\n"
            "  --model M   a model file (ours or a reference model.bin)\n"
            "  --text FILE UTF-8 text\n"
            "  --last F    only the last fraction F of the file (0.1: the part `lm train\n"
            "              --holdout 0.1` held out); default: all of it\n"
            "  --dense     the model's dense twin (same weights, no LIF)\n"
            "\n"
            "example:\n"
            "  spiketalk lm eval --model shakespeare.stnn \\\n"
            "      --text ../shared/data/text/tinyshakespeare.txt --last 0.1\n");
}

int st_cmd_lm_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"text", required_argument, 0, 't'},
                                         {"last", required_argument, 0, 'l'},
                                         {"dense", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *me = "lm eval", *model_path = NULL, *path = NULL;
    double last = 0;
    bool dense = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 't': path = optarg; break;
        case 'l':
            if (!cli_parse_double(me, "--last", optarg, 0, 1, &last))
                return 2;
            break;
        case 'd': dense = true; break;
        case 'h': eval_usage(stdout); return 0;
        default: eval_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(me, "unexpected argument '%s' (see --help)", argv[optind]) + 1;
    if (!model_path || !path)
        return cli_fail(me, "--model and --text are required (see --help)") + 1;
    int err;
    st_lm_model *m = st_lm_model_load(model_path, &err);
    if (!m)
        return cli_fail_lib(me, err, "loading the model");
    if (dense) {
        st_lm_model *twin = st_lm_model_twin(m, false, &err);
        st_lm_model_destroy(&m);
        if (!(m = twin))
            return cli_fail_lib(me, err, "making the dense twin");
    }
    size_t len;
    char *text = slurp(me, path, &len);
    if (!text) {
        st_lm_model_destroy(&m);
        return 1;
    }
    size_t at = last > 0 ? holdout_at(text, len, last) : 0;
    double nats, es;
    size_t ch, tk;
    int status = 1;
    if (!eval_text(me, m, text + at, len - at, &nats, &ch, &tk, &es)) {
        printf("%s on %s%s: %zu characters, %zu predictions: %.4f nats/char, %.4f bits/char, "
               "%.4f nats/token (%.1f s)\n",
               model_path, path, last > 0 ? " (held-out end)" : "", ch, tk, nats / (double)ch,
               nats / (double)ch / log(2.0), nats / (double)tk, es);
        status = 0;
    }
    free(text);
    st_lm_model_destroy(&m);
    return status;
}
