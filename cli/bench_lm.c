/*  cli/bench_lm.c - `spiketalk bench lm`: the spiking language model's
    speed, token by token and in the parallel mode, and its time to first
    token, against a PyTorch implementation of the same model
    (tools/peers/torch_spikegpt.py, python3-torch, one thread, token by
    token under no_grad) on the same random weights, in the same run.

    The weights are drawn here (RWKV-4's initialisation, output projections
    x30 as in the reference bundle, so about a fifth of the LIF neurons
    fire), written to a temporary model.bin in the reference format, and
    loaded by the peer, which also returns its logits after the first token:
    the run checks that both computed the same model. Sizes: 4 layers x 128
    (vocab 256), the shipped size, and the golden bundle's 2 x 32 (vocab 77).
*/
#include "cli.h"

#include "snn/lm.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "bench lm"
#define PEER "torch_spikegpt.py"
#define PYTHON "/usr/bin/python3"
#define PROMPT_LEN 32

typedef struct {
    const char *name;
    uint32_t n_layer, n_embd, vocab;
} size_case;

static const size_case cases[] = {{"4x128", 4, 128, 256}, {"2x32 (golden)", 2, 32, 77}};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench lm [--tokens N] [--repeat R] [--no-peer] [--json]\n"
            "\n"
            "Times the spiking language model on random weights at two sizes, 4 layers x\n"
            "128 (vocab 256) and the golden bundle's 2 x 32 (vocab 77), on one core:\n"
            "\n"
            "  token by token  st_lm_step with logits, N tokens (default 2000) after 100\n"
            "                  of warm-up; the median of R passes (default 3)\n"
            "  parallel        st_lm_forward over the same N tokens (a prompt's path)\n"
            "  first token     from a fresh state: a 32-token prompt in the parallel mode,\n"
            "                  then the argmax of its logits; p50 and p95 of 200 runs\n"
            "  dense control   the same weights as RWKV-4 (no LIF, real embedding)\n"
            "\n"
            "and runs the same model in PyTorch (tools/peers/" PEER ", one thread,\n"
            "token by token, torch.no_grad) in the same invocation, on the same weights\n"
            "(written to a temporary model.bin) and tokens. The peer's first-token time\n"
            "feeds the prompt token by token, its only mode. Needs python3-torch\n"
            "(apt-get install python3-torch); without it, only our figures are shown.\n"
            "\n"
            "options:\n"
            "  --tokens N   tokens per timed pass, 100 .. 1000000 (default 2000)\n"
            "  --repeat R   passes, 1 .. 50 (default 3)\n"
            "  --no-peer    skip PyTorch\n"
            "  --json       one JSON object instead of the table\n"
            "  -h, --help   this help\n"
            "\n"
            "columns (and JSON fields):\n"
            "  model              layers x width\n"
            "  tok_s              ours, token by token, tokens per second\n"
            "  parallel_tok_s     ours, parallel mode, tokens per second\n"
            "  dense_tok_s        the dense RWKV-4 twin, token by token\n"
            "  torch_tok_s        PyTorch, token by token\n"
            "  vs_torch           tok_s / torch_tok_s\n"
            "  ttft_p50_ms, ttft_p95_ms            ours, first token after a 32-token prompt\n"
            "  torch_ttft_p50_ms, torch_ttft_p95_ms  the same in PyTorch\n"
            "  logit_diff         max |ours - PyTorch| of the logits after the first token\n");
}

/* Finds the peer script: $ST_PEERS_DIR, ./tools/peers, or beside the binary. */
static bool find_peer(char *out, size_t cap)
{
    const char *env = getenv("ST_PEERS_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s/%s", env, PEER);
        if (access(out, R_OK) == 0)
            return true;
    }
    snprintf(out, cap, "tools/peers/%s", PEER);
    if (access(out, R_OK) == 0)
        return true;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            int w = snprintf(out, cap, "%s/../tools/peers/%s", exe, PEER);
            if (w > 0 && (size_t)w < cap && access(out, R_OK) == 0)
                return true;
        }
    }
    return false;
}

static bool json_number(const char *js, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p)
        return false;
    char *end;
    *out = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

static size_t json_array(const char *js, const char *key, float *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    const char *p = strstr(js, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    size_t n = 0;
    while (n < cap) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[n++] = (float)v;
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

typedef struct {
    bool ran;
    double tok_s, ttft_p50_ms, ttft_p95_ms;
    float *first_logits;
    size_t n_first;
    char error[256];
} peer_result;

static void run_peer(const char *script, const char *model, const char *tokens, long n_tokens,
                     long repeat, peer_result *pr, size_t vocab)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             PYTHON " %s --model %s --token-file %s --tokens %ld --repeat %ld --prompt-len %d "
                    "2>&1",
             script, model, tokens, n_tokens, repeat, PROMPT_LEN);
    FILE *f = popen(cmd, "r");
    if (!f) {
        snprintf(pr->error, sizeof pr->error, "cannot run %s", PYTHON);
        return;
    }
    size_t cap = 1 << 20, len = 0, got;
    char *buf = malloc(cap);
    if (!buf) {
        pclose(f);
        snprintf(pr->error, sizeof pr->error, "out of memory");
        return;
    }
    while ((got = fread(buf + len, 1, cap - 1 - len, f)) > 0)
        len += got;
    buf[len] = '\0';
    int rc = pclose(f);
    pr->first_logits = malloc(vocab * sizeof(float));
    if (rc != 0 || !json_number(buf, "tokens_per_s", &pr->tok_s)) {
        const char *e = strstr(buf, "\"error\": \"");
        snprintf(pr->error, sizeof pr->error, "%.200s", e ? e + 10 : buf);
        char *q = strchr(pr->error, '"');
        if (q)
            *q = '\0';
        free(buf);
        return;
    }
    json_number(buf, "ttft_p50_ms", &pr->ttft_p50_ms);
    json_number(buf, "ttft_p95_ms", &pr->ttft_p95_ms);
    if (pr->first_logits)
        pr->n_first = json_array(buf, "first_logits", pr->first_logits, vocab);
    pr->ran = true;
    free(buf);
}

static int32_t argmax(const float *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return (int32_t)b;
}

static double time_steps(const st_lm_model *m, st_lm_state *s, const int32_t *toks, long n,
                         float *logits)
{
    st_lm_state_reset(s);
    double t0 = st_now_s();
    for (long i = 0; i < n; i++)
        st_lm_step(m, s, toks[i], logits);
    return st_now_s() - t0;
}

int st_bench_lm(int argc, char **argv)
{
    static const struct option opts[] = {{"tokens", required_argument, 0, 'n'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"no-peer", no_argument, 0, 'P'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long n_tokens = 2000, repeat = 3;
    bool json = false, peer = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!cli_parse_int(CMD, "--tokens", optarg, 100, 1000000, &n_tokens))
                return 2;
            break;
        case 'r':
            if (!cli_parse_int(CMD, "--repeat", optarg, 1, 50, &repeat))
                return 2;
            break;
        case 'P': peer = false; break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]) + 1;

    char script[4096] = "";
    const char *peer_note = NULL;
    if (peer && !find_peer(script, sizeof script)) {
        peer = false;
        peer_note = "PyTorch peer skipped: tools/peers/" PEER " not found (run from the "
                    "repository root, or set ST_PEERS_DIR)";
    }
    if (peer && system(PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
        peer = false;
        peer_note = "PyTorch peer skipped: python3-torch is not installed; install it with "
                    "`apt-get install python3-torch` (tools/deps does, as root)";
    }
    char dir[100]; /* the peer's paths below are 128 bytes: a longer TMPDIR falls back to /tmp */
    if (st_tmpdir_make(dir, sizeof dir, "spiketalk-bench-lm"))
        return cli_fail(CMD, "%s", st_errmsg());

    report rep;
    report_init(&rep, "lm", "SpikeGPT language model: tokens/s and first-token time vs PyTorch",
                argc, argv);
    report_col_text(&rep, "model");
    report_col_num(&rep, "tok_s", "tok/s");
    report_col_num(&rep, "parallel_tok_s", "tok/s");
    report_col_num(&rep, "dense_tok_s", "tok/s");
    report_col_num(&rep, "torch_tok_s", "tok/s");
    report_col_num(&rep, "vs_torch", "x");
    report_col_num(&rep, "ttft_p50_ms", "ms");
    report_col_num(&rep, "ttft_p95_ms", "ms");
    report_col_num(&rep, "torch_ttft_p50_ms", "ms");
    report_col_num(&rep, "torch_ttft_p95_ms", "ms");
    report_col_num(&rep, "logit_diff", "");

    int status = 0;
    const char *kernel = "";
    double worst_diff = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0] && !status; ci++) {
        const size_case *sc = &cases[ci];
        st_lm_config cfg = {.n_layer = sc->n_layer, .n_embd = sc->n_embd, .vocab = sc->vocab,
                            .n_ffn = 4 * sc->n_embd, .spiking = true};
        int err;
        st_lm_model *m = st_lm_model_new(&cfg, &err), *dense = NULL;
        st_lm_state *s = NULL;
        int32_t *toks = malloc((size_t)n_tokens * sizeof *toks);
        float *logits = malloc(sc->vocab * sizeof *logits);
        double *times = malloc(200 * sizeof *times);
        peer_result pr = {0};
        char model_path[128], tok_path[128];
        snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
        snprintf(tok_path, sizeof tok_path, "%s/tokens.i32", dir);
        if (!m || !toks || !logits || !times) {
            status = cli_fail(CMD, "out of memory");
            goto next;
        }
        st_lm_model_randomize(m, 1234 + ci, 30.0f);
        kernel = st_lm_model_kernel(m);
        if (!(s = st_lm_state_new(m, &err)) || !(dense = st_lm_model_twin(m, false, &err))) {
            status = cli_fail_lib(CMD, err, "making the model");
            goto next;
        }
        uint64_t r = 42;
        for (long i = 0; i < n_tokens; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((r >> 33) % sc->vocab);
        }
        FILE *tf = fopen(tok_path, "wb");
        bool wrote = tf && fwrite(toks, sizeof *toks, (size_t)n_tokens, tf) == (size_t)n_tokens;
        if (tf)
            wrote = (fclose(tf) == 0) && wrote;
        if (!wrote || (err = st_lm_model_save_reference(m, model_path))) {
            status = cli_fail(CMD, "cannot write the model for the peer in %s", dir);
            goto next;
        }
        /* token by token, spiking and dense */
        double tp[50], td[50], tpar[50];
        time_steps(m, s, toks, n_tokens < 100 ? n_tokens : 100, logits);
        for (long k = 0; k < repeat; k++) {
            tp[k] = time_steps(m, s, toks, n_tokens, logits);
            st_lm_state_reset(s);
            double t0 = st_now_s();
            st_lm_forward(m, s, toks, (size_t)n_tokens, logits, false, NULL);
            tpar[k] = st_now_s() - t0;
        }
        st_lm_state *sd = st_lm_state_new(dense, &err);
        if (!sd) {
            status = cli_fail_lib(CMD, err, "making a state");
            goto next;
        }
        for (long k = 0; k < repeat; k++)
            td[k] = time_steps(dense, sd, toks, n_tokens, logits);
        st_lm_state_destroy(&sd);
        /* first token: 32-token prompt, parallel mode, argmax */
        volatile int32_t sink = 0;
        for (int k = 0; k < 200; k++) {
            double t0 = st_now_s();
            st_lm_state_reset(s);
            st_lm_forward(m, s, toks, PROMPT_LEN, logits, false, NULL);
            sink += argmax(logits, sc->vocab);
            times[k] = st_now_s() - t0;
        }
        (void)sink;
        double p50 = cli_percentile_rank(times, 200, 50), p95 = cli_percentile_rank(times, 200, 95);
        /* the peer */
        if (peer)
            run_peer(script, model_path, tok_path, n_tokens, repeat, &pr, sc->vocab);
        int row = report_row(&rep);
        report_set_text(&rep, row, "model", sc->name);
        double tok_s = (double)n_tokens / cli_median(tp, (int)repeat);
        report_set_num(&rep, row, "tok_s", tok_s);
        report_set_num(&rep, row, "parallel_tok_s", (double)n_tokens / cli_median(tpar, (int)repeat));
        report_set_num(&rep, row, "dense_tok_s", (double)n_tokens / cli_median(td, (int)repeat));
        report_set_num(&rep, row, "ttft_p50_ms", 1e3 * p50);
        report_set_num(&rep, row, "ttft_p95_ms", 1e3 * p95);
        if (pr.ran) {
            report_set_num(&rep, row, "torch_tok_s", pr.tok_s);
            report_set_num(&rep, row, "vs_torch", tok_s / pr.tok_s);
            report_set_num(&rep, row, "torch_ttft_p50_ms", pr.ttft_p50_ms);
            report_set_num(&rep, row, "torch_ttft_p95_ms", pr.ttft_p95_ms);
            st_lm_state_reset(s);
            st_lm_step(m, s, toks[0], logits);
            double diff = pr.n_first == sc->vocab ? 0 : INFINITY;
            for (size_t i = 0; i < pr.n_first && i < sc->vocab; i++)
                diff = fmax(diff, fabs((double)logits[i] - pr.first_logits[i]));
            report_set_num(&rep, row, "logit_diff", diff);
            worst_diff = fmax(worst_diff, diff);
        } else if (peer) {
            peer_note = NULL;
            report_note(&rep, "%s: the PyTorch peer failed: %s", sc->name, pr.error);
        }
    next:
        free(pr.first_logits);
        st_lm_state_destroy(&s);
        st_lm_model_destroy(&dense);
        st_lm_model_destroy(&m);
        free(toks);
        free(logits);
        free(times);
    }
    st_tmpdir_remove(dir, NULL);
    if (status)
        return status;
    report_note(&rep, "one core, median of %ld passes of %ld tokens; kernel %s; PyTorch: %s", repeat,
                n_tokens, kernel, peer ? "tools/peers/" PEER ", 1 thread, token by token" : "not run");
    report_note(&rep, "first token: fresh state, %d-token prompt (ours in the parallel mode, "
                      "PyTorch token by token), then argmax",
                PROMPT_LEN);
    if (peer_note)
        report_note(&rep, "%s", peer_note);
    if (peer && worst_diff > 1e-3)
        report_note(&rep, "WARNING: logits after the first token differ from PyTorch's by %.3g",
                    worst_diff);
    report_print(&rep, json, stdout);
    return peer && worst_diff > 1e-3 ? 1 : 0;
}
