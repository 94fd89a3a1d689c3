/*  cli/cmd_lm.c - `spiketalk lm`: the spiking language model from the
    command line.

    `lm golden DIR` checks the model against a reference bundle (model.bin
    and what the reference computed on its tokens) in both modes, token by
    token and parallel, and prints the largest deviations; `lm generate`
    writes text from a prompt, token by token as it is made; `lm convert`
    stores a model.bin (plus a tokenizer) in our own format; `lm info` says
    what a model file holds. The benchmark is `spiketalk bench lm`.
*/
#include "cli.h"

#include "snn/lm.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "lm"

/* ---- lm golden ------------------------------------------------------------ */

static void golden_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm golden DIR [--tolerance T] [--near E] [--kernel K] [--dense]\n"
            "\n"
            "Checks the language model against a reference bundle: DIR holds the\n"
            "reference's model.bin and what its token-by-token (RNN) mode computed on the\n"
            "tokens of tokens.i32 (T int32):\n"
            "\n"
            "  logits.f32  T x vocab        logits after each token\n"
            "  hpre.f32    T x L x 2 x D    the current into each LIF (0: after the time\n"
            "                               mix, 1: after the channel mix)\n"
            "  mem.f32     T x L x 2 x D    the membrane after charge, fire and reset\n"
            "  spk.u8      T x L x 2 x D    the spikes (0/1)\n"
            "\n"
            "Sizes come from model.bin's header, T from tokens.i32; nothing is fixed to\n"
            "one bundle. The tokens are run twice, one at a time (st_lm_step) and in the\n"
            "parallel mode (st_lm_forward, a chunk of tokens per layer), and both are\n"
            "compared with the reference. It matches when logits, currents and membranes\n"
            "are within T (default 1e-4) at every token and every spike is the\n"
            "reference's, except where the reference's charge h = v + (c - v)/2 is within\n"
            "E (default 1e-5) of the threshold: there the two may round to different\n"
            "sides, and the reference's spike is the one carried on, so one rounding does\n"
            "not make the rest of the run diverge.\n"
            "\n"
            "options:\n"
            "  --tolerance T  largest |ours - reference| allowed (default 1e-4)\n"
            "  --near E       the near-threshold band (default 1e-5)\n"
            "  --kernel K     matrix kernel: auto (default), avx2, generic\n"
            "  --dense        run the dense RWKV-4 twin instead (it is expected to MISMATCH:\n"
            "                 a demonstration that the check can fail)\n"
            "  -h, --help     this help\n"
            "\n"
            "Exit status: 0 when everything matches, 1 on a mismatch or a bad bundle,\n"
            "2 on bad usage.\n"
            "\n"
            "example:\n"
            "  spiketalk lm golden ../shared/data/spikegpt/golden_L2_D32\n");
}

/* Reads a whole file of exactly `want` bytes (want 0: any multiple of
   `unit`), into a new buffer. */
static void *read_file(const char *dir, const char *name, size_t want, size_t unit, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_fail(CMD " golden", "cannot open '%s'", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || (want && (size_t)n != want) || (!want && (n == 0 || (size_t)n % unit))) {
        if (want)
            cli_fail(CMD " golden", "'%s' is %ld bytes, expected %zu for these sizes", path, n,
                     want);
        else
            cli_fail(CMD " golden", "'%s' is %ld bytes, not a non-empty multiple of %zu", path,
                     n, unit);
        fclose(f);
        return NULL;
    }
    void *buf = malloc((size_t)n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        cli_fail(CMD " golden", "cannot read '%s'", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

typedef struct {
    double max;
    size_t at;
} dev;

static void track(dev *d, double diff, size_t at)
{
    if (!(diff <= d->max)) { /* NaN counts as the worst */
        d->max = isnan(diff) ? INFINITY : diff;
        d->at = at;
    }
}

typedef struct {
    float *logits, *cur, *charge, *mem;
    uint8_t *spk;
    size_t followed;
} run_out;

static const char *place(char *buf, size_t cap, size_t at, size_t L, size_t D)
{
    size_t t = at / (L * 2 * D), r = at % (L * 2 * D);
    snprintf(buf, cap, "token %zu, layer %zu, %s, channel %zu", t, r / (2 * D),
             (r / D) % 2 ? "channel mix" : "time mix", r % D);
    return buf;
}

static int cmd_golden(int argc, char **argv)
{
    static const struct option opts[] = {{"tolerance", required_argument, 0, 't'},
                                         {"near", required_argument, 0, 'n'},
                                         {"kernel", required_argument, 0, 'k'},
                                         {"dense", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double tol = 1e-4, near = 1e-5;
    const char *kernel = "auto";
    bool dense = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!cli_parse_double(CMD " golden", "--tolerance", optarg, 0, 1e9, &tol))
                return 2;
            break;
        case 'n':
            if (!cli_parse_double(CMD " golden", "--near", optarg, 0, 1, &near))
                return 2;
            break;
        case 'k': kernel = optarg; break;
        case 'd': dense = true; break;
        case 'h': golden_usage(stdout); return 0;
        default: golden_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        golden_usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    char path[4096];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    int err;
    st_lm_model *model = st_lm_model_load(path, &err);
    if (!model)
        return cli_fail_lib(CMD " golden", err, "loading the model");
    if (dense) {
        st_lm_model *twin = st_lm_model_twin(model, false, &err);
        st_lm_model_destroy(&model);
        if (!(model = twin))
            return cli_fail_lib(CMD " golden", err, "making the dense twin");
    }
    if ((err = st_lm_model_use_kernel(model, kernel))) {
        st_lm_model_destroy(&model);
        return cli_fail_lib(CMD " golden", err, "--kernel");
    }
    const st_lm_config *cfg = st_lm_model_config(model);
    const size_t L = cfg->n_layer, D = cfg->n_embd, V = cfg->vocab, N = L * 2 * D;
    int status = 1;
    size_t tok_bytes = 0;
    int32_t *tokens = read_file(dir, "tokens.i32", 0, 4, &tok_bytes);
    const size_t T = tok_bytes / 4;
    float *ref_logits = NULL, *ref_cur = NULL, *ref_mem = NULL;
    uint8_t *ref_spk = NULL;
    run_out runs[2] = {{0}};
    st_lm_state *state = NULL;
    if (!tokens || !(ref_logits = read_file(dir, "logits.f32", T * V * 4, 4, NULL)) ||
        !(ref_cur = read_file(dir, "hpre.f32", T * N * 4, 4, NULL)) ||
        !(ref_mem = read_file(dir, "mem.f32", T * N * 4, 4, NULL)) ||
        !(ref_spk = read_file(dir, "spk.u8", T * N, 1, NULL)))
        goto done;
    for (size_t t = 0; t < T; t++)
        if (tokens[t] < 0 || (size_t)tokens[t] >= V) {
            cli_fail(CMD " golden", "tokens.i32: token %d at %zu is outside the vocabulary "
                                    "(%zu)",
                     (int)tokens[t], t, V);
            goto done;
        }
    for (int k = 0; k < 2; k++) {
        run_out *r = &runs[k];
        r->logits = malloc(T * V * sizeof(float));
        r->cur = malloc(T * N * sizeof(float));
        r->charge = malloc(T * N * sizeof(float));
        r->mem = malloc(T * N * sizeof(float));
        r->spk = malloc(T * N);
        if (!r->logits || !r->cur || !r->charge || !r->mem || !r->spk) {
            cli_fail(CMD " golden", "out of memory for %zu tokens", T);
            goto done;
        }
    }
    if (!(state = st_lm_state_new(model, &err))) {
        cli_fail_lib(CMD " golden", err, "making a state");
        goto done;
    }
    /* token by token */
    for (size_t t = 0; t < T; t++) {
        st_lm_trace tr = {.current = runs[0].cur + t * N,
                          .charge = runs[0].charge + t * N,
                          .membrane = runs[0].mem + t * N,
                          .spikes = runs[0].spk + t * N,
                          .follow = ref_spk + t * N,
                          .follow_eps = (float)near + 1e-6f};
        st_lm_forward(model, state, &tokens[t], 1, runs[0].logits + t * V, false, &tr);
        runs[0].followed += tr.n_followed;
    }
    /* parallel */
    st_lm_state_reset(state);
    st_lm_trace tr = {.current = runs[1].cur,
                      .charge = runs[1].charge,
                      .membrane = runs[1].mem,
                      .spikes = runs[1].spk,
                      .follow = ref_spk,
                      .follow_eps = (float)near + 1e-6f};
    st_lm_forward(model, state, tokens, T, runs[1].logits, true, &tr);
    runs[1].followed = tr.n_followed;

    printf("golden bundle %s: %zu layers x %zu, vocab %zu, n_ffn %u, %zu tokens; %s model, "
           "kernel %s\n",
           dir, L, D, V, cfg->n_ffn, T, cfg->spiking ? "spiking" : "DENSE (control)",
           st_lm_model_kernel(model));
    bool ok = true;
    static const char *mode_name[2] = {"token by token", "parallel"};
    for (int k = 0; k < 2; k++) {
        run_out *r = &runs[k];
        dev dl = {0, 0}, dc = {0, 0}, dm = {0, 0};
        size_t mismatch = 0, exempt = 0, first_bad = (size_t)-1;
        double closest = INFINITY;
        for (size_t i = 0; i < T * V; i++)
            track(&dl, fabs((double)r->logits[i] - ref_logits[i]), i);
        for (size_t i = 0; i < T * N; i++) {
            track(&dc, fabs((double)r->cur[i] - ref_cur[i]), i);
            track(&dm, fabs((double)r->mem[i] - ref_mem[i]), i);
            /* the reference's own charge, from its current and previous membrane */
            float prev = i >= N ? ref_mem[i - N] : 0.0f;
            double h_ref = (double)(prev + (ref_cur[i] - prev) * 0.5f);
            if (cfg->spiking && fabs(h_ref - 1) < closest)
                closest = fabs(h_ref - 1);
            if ((r->spk[i] != 0) != (ref_spk[i] != 0)) {
                if (fabs(h_ref - 1) < near)
                    exempt++;
                else if (mismatch++ == 0)
                    first_bad = i;
            }
        }
        bool ok_k = dl.max <= tol && dc.max <= tol && dm.max <= tol && mismatch == 0;
        ok = ok && ok_k;
        char where[128];
        printf("\n%s:\n", mode_name[k]);
        printf("  %-12s max |ours - ref| %-10.3g at token %zu, id %zu%s\n", "logits", dl.max,
               dl.at / V, dl.at % V, dl.max <= tol ? "" : "   <-- over tolerance");
        printf("  %-12s max |ours - ref| %-10.3g at %s%s\n", "LIF currents", dc.max,
               place(where, sizeof where, dc.at, L, D), dc.max <= tol ? "" : "   <-- over tolerance");
        printf("  %-12s max |ours - ref| %-10.3g at %s%s\n", "membranes", dm.max,
               place(where, sizeof where, dm.at, L, D), dm.max <= tol ? "" : "   <-- over tolerance");
        printf("  %-12s %zu of %zu differ", "spikes", mismatch + exempt, T * N);
        if (exempt)
            printf(" (%zu within %g of the threshold in the reference: allowed)", exempt, near);
        if (mismatch)
            printf("   <-- %zu MISMATCH, first at %s", mismatch,
                   place(where, sizeof where, first_bad, L, D));
        printf("\n");
        if (cfg->spiking) {
            size_t fired = 0;
            for (size_t i = 0; i < T * N; i++)
                fired += ref_spk[i] != 0;
            printf("  %-12s %.4f of the LIF neurons fire; the reference's closest charge is "
                   "%.3g from the threshold\n",
                   "spike rate", (double)fired / (double)(T * N), closest);
        }
        printf("  %-12s %s\n", "result", ok_k ? "match" : "MISMATCH");
    }
    size_t same = 0;
    for (size_t i = 0; i < T * V; i++)
        same += runs[0].logits[i] == runs[1].logits[i];
    printf("\nparallel vs token by token: %s (%zu of %zu logits bit-identical)\n",
           same == T * V ? "identical" : "DIFFERENT", same, T * V);
    ok = ok && same == T * V;
    printf("%s\n", ok ? "MATCH" : "MISMATCH");
    status = ok ? 0 : 1;
done:
    st_lm_state_destroy(&state);
    for (int k = 0; k < 2; k++) {
        free(runs[k].logits);
        free(runs[k].cur);
        free(runs[k].charge);
        free(runs[k].mem);
        free(runs[k].spk);
    }
    free(tokens);
    free(ref_logits);
    free(ref_cur);
    free(ref_mem);
    free(ref_spk);
    st_lm_model_destroy(&model);
    return status;
}

/* ---- lm generate ---------------------------------------------------------- */

static void generate_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm generate --model M --prompt TEXT [--max-tokens N]\n"
            "           [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R]\n"
            "           [--seed S] [--greedy] [--dense] [--stats]\n"
            "\n"
            "Feeds the prompt (in the parallel mode) and writes what the model makes of it\n"
            "to stdout, token by token as each is made. The text goes through the tokenizer\n"
            "stored with the model (a model.bin has none: it gets the default, printable\n"
            "ASCII by code, or bytes for a vocabulary of 256 or more); characters it does\n"
            "not know are reported on stderr and dropped (or become its unknown token).\n"
            "\n"
            "Each next token is drawn from the logits after: the repetition penalty\n"
            "(the logit of every token among the last 64 is divided by R when positive,\n"
            "multiplied by R when negative), the temperature (logits / T; sharper below 1,\n"
            "flatter above), top-k (only the K most likely stay), then top-p (only the\n"
            "fewest most likely whose probability reaches P stay). --greedy (or T = 0)\n"
            "takes the most likely token every time. The same seed gives the same text.\n"
            "\n"
            "options:\n"
            "  --model M              model.bin (reference format) or our own model file\n"
            "  --prompt TEXT          what the model continues (UTF-8)\n"
            "  --max-tokens N         tokens to make, 1 .. 100000 (default 200)\n"
            "  --temperature T        0 .. 100 (default 0.8)\n"
            "  --top-k K              0 (off) .. vocab (default 0)\n"
            "  --top-p P              0 < P <= 1 (default 0.95)\n"
            "  --repetition-penalty R 1 (off) .. 10 (default 1)\n"
            "  --seed S               random seed (default 1)\n"
            "  --greedy               argmax at every step\n"
            "  --dense                use the model's dense RWKV-4 twin (no LIF, real-valued\n"
            "                         embedding): the control for the spiking model\n"
            "  --stats                first-token time and tokens per second on stderr\n"
            "  -h, --help             this help\n"
            "\n"
            "examples:\n"
            "  spiketalk lm generate --model model.bin --prompt \"Hello\" --greedy\n"
            "  spiketalk lm generate --model chat.stnn --prompt \"Q: time? A:\" --top-k 20 "
            "--seed 7\n");
}

static int print_piece(int32_t token, const char *piece, size_t len, void *user_data)
{
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_generate(int argc, char **argv)
{
    enum { O_MAX = 1000, O_TEMP, O_TOPK, O_TOPP, O_REP, O_SEED };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"prompt", required_argument, 0, 'p'},
                                         {"max-tokens", required_argument, 0, O_MAX},
                                         {"temperature", required_argument, 0, O_TEMP},
                                         {"top-k", required_argument, 0, O_TOPK},
                                         {"top-p", required_argument, 0, O_TOPP},
                                         {"repetition-penalty", required_argument, 0, O_REP},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"greedy", no_argument, 0, 'g'},
                                         {"dense", no_argument, 0, 'd'},
                                         {"stats", no_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model_path = NULL, *prompt = NULL;
    long max_tokens = 200, top_k = 0, seed = 1;
    double temperature = 0.8, top_p = 0.95, rep = 1;
    bool greedy = false, dense = false, stats = false;
    int c;
    optind = 1;
    const char *me = CMD " generate";
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case O_MAX:
            if (!cli_parse_int(me, "--max-tokens", optarg, 1, 100000, &max_tokens))
                return 2;
            break;
        case O_TEMP:
            if (!cli_parse_double(me, "--temperature", optarg, 0, 100, &temperature))
                return 2;
            break;
        case O_TOPK:
            if (!cli_parse_int(me, "--top-k", optarg, 0, 1 << 24, &top_k))
                return 2;
            break;
        case O_TOPP:
            if (!cli_parse_double(me, "--top-p", optarg, 1e-9, 1, &top_p))
                return 2;
            break;
        case O_REP:
            if (!cli_parse_double(me, "--repetition-penalty", optarg, 1, 10, &rep))
                return 2;
            break;
        case O_SEED:
            if (!cli_parse_int(me, "--seed", optarg, 0, 0x7fffffffL, &seed))
                return 2;
            break;
        case 'g': greedy = true; break;
        case 'd': dense = true; break;
        case 's': stats = true; break;
        case 'h': generate_usage(stdout); return 0;
        default: generate_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(me, "unexpected argument '%s' (see --help)", argv[optind]) + 1;
    if (!model_path || !prompt) {
        cli_fail(me, "--model and --prompt are required (see --help)");
        return 2;
    }
    int err, status = 1;
    st_lm_model *model = st_lm_model_load(model_path, &err);
    st_lm_state *state = NULL;
    st_lm_sampler *sampler = NULL;
    int32_t *ids = NULL, *out = NULL;
    if (!model)
        return cli_fail_lib(me, err, "loading the model");
    if (dense) {
        st_lm_model *twin = st_lm_model_twin(model, false, &err);
        st_lm_model_destroy(&model);
        if (!(model = twin))
            return cli_fail_lib(me, err, "making the dense twin");
    }
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(model);
    size_t len = strlen(prompt), n_ids = 0, unknown = 0;
    ids = malloc((len + 1) * sizeof *ids);
    out = malloc((size_t)max_tokens * sizeof *out);
    if (!ids || !out) {
        cli_fail(me, "out of memory");
        goto done;
    }
    st_lm_tokenizer_encode(tok, prompt, len, ids, len + 1, &n_ids, &unknown);
    if (unknown)
        fprintf(stderr, "spiketalk %s: %zu character(s) of the prompt are not in the model's "
                        "vocabulary of %zu; %s\n",
                me, unknown, st_lm_tokenizer_size(tok),
                st_lm_tokenizer_unk(tok) >= 0 ? "they became the unknown token" : "dropped");
    if (!n_ids) {
        cli_fail(me, "the prompt makes no tokens the model knows");
        goto done;
    }
    st_lm_sample_params sp = st_lm_sample_default_params();
    sp.greedy = greedy;
    sp.temperature = (float)temperature;
    sp.top_k = (uint32_t)top_k;
    sp.top_p = (float)top_p;
    sp.repetition_penalty = (float)rep;
    sp.seed = (uint64_t)seed;
    if (!(state = st_lm_state_new(model, &err)) ||
        !(sampler = st_lm_sampler_new(st_lm_model_config(model)->vocab, &sp, &err))) {
        cli_fail_lib(me, err, "setting up");
        goto done;
    }
    st_lm_generate_params gp = st_lm_generate_default_params();
    gp.max_tokens = (size_t)max_tokens;
    gp.on_token = print_piece;
    st_lm_generate_result res;
    fwrite(prompt, 1, len, stdout);
    fflush(stdout);
    if ((err = st_lm_generate(model, state, sampler, ids, n_ids, &gp, out, (size_t)max_tokens,
                              &res))) {
        cli_fail_lib(me, err, "generating");
        goto done;
    }
    printf("\n");
    if (stats)
        fprintf(stderr, "%zu prompt tokens, %zu generated; first token after %.3f ms, %.0f "
                        "tokens/s overall (kernel %s)\n",
                res.n_prompt, res.n_generated, 1e3 * res.first_token_s,
                (double)(res.n_prompt + res.n_generated) / res.total_s,
                st_lm_model_kernel(model));
    status = 0;
done:
    free(ids);
    free(out);
    st_lm_sampler_destroy(&sampler);
    st_lm_state_destroy(&state);
    st_lm_model_destroy(&model);
    return status;
}

/* ---- lm convert, lm info -------------------------------------------------- */

static void convert_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm convert IN OUT [--chars TEXT | --corpus FILE] [--dense]\n"
            "       spiketalk lm info MODEL\n"
            "\n"
            "convert reads a model (a reference model.bin or our own file) and writes it in\n"
            "our own format (an STNN container of kind \"spikegpt\", docs/LM.md): the\n"
            "weights, the variant, and a tokenizer. The tokenizer is the model's own, or:\n"
            "  --chars TEXT   one token per character of TEXT, in order (token k is its\n"
            "                 k-th character), as the model was trained\n"
            "  --corpus FILE  character level from FILE: token 0 unknown, then its\n"
            "                 characters most frequent first, as many as the vocabulary holds\n"
            "  --dense        store it as the dense RWKV-4 twin\n"
            "\n"
            "info prints the sizes, the variant, the parameter count, the tokenizer.\n");
}

static int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {{"chars", required_argument, 0, 'c'},
                                         {"corpus", required_argument, 0, 'C'},
                                         {"dense", no_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *chars = NULL, *corpus = NULL, *me = CMD " convert";
    bool dense = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': chars = optarg; break;
        case 'C': corpus = optarg; break;
        case 'd': dense = true; break;
        case 'h': convert_usage(stdout); return 0;
        default: convert_usage(stderr); return 2;
        }
    }
    if (optind != argc - 2) {
        convert_usage(stderr);
        return 2;
    }
    int err;
    st_lm_model *m = st_lm_model_load(argv[optind], &err);
    if (!m)
        return cli_fail_lib(me, err, "loading the model");
    if (dense) {
        st_lm_model *twin = st_lm_model_twin(m, false, &err);
        st_lm_model_destroy(&m);
        if (!(m = twin))
            return cli_fail_lib(me, err, "making the dense twin");
    }
    st_lm_tokenizer *tok = NULL;
    if (chars) {
        tok = st_lm_tokenizer_new_chars(chars, &err);
    } else if (corpus) {
        FILE *f = fopen(corpus, "rb");
        char *text = NULL;
        long n = -1;
        if (f && !fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
            (text = malloc((size_t)n + 1)) && fread(text, 1, (size_t)n, f) == (size_t)n)
            tok = st_lm_tokenizer_from_corpus(text, (size_t)n, st_lm_model_config(m)->vocab,
                                              &err);
        else
            err = st_error(ST_ERR_IO, "cannot read the corpus '%s'", corpus);
        free(text);
        if (f)
            fclose(f);
    }
    if ((chars || corpus) && (!tok || (err = st_lm_model_set_tokenizer(m, &tok)))) {
        st_lm_tokenizer_destroy(&tok);
        st_lm_model_destroy(&m);
        return cli_fail_lib(me, err, "the tokenizer");
    }
    err = st_lm_model_save(m, argv[optind + 1]);
    st_lm_model_destroy(&m);
    if (err)
        return cli_fail_lib(me, err, "saving");
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        convert_usage(argc == 2 ? stdout : stderr);
        return argc == 2 ? 0 : 2;
    }
    int err;
    st_lm_model *m = st_lm_model_load(argv[1], &err);
    if (!m)
        return cli_fail_lib(CMD " info", err, "loading the model");
    const st_lm_config *c = st_lm_model_config(m);
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(m);
    printf("%s: %s, %u layers x %u, n_ffn %u, vocab %u\n", argv[1],
           c->spiking ? "SpikeGPT (spiking)" : "RWKV-4 (dense control)", c->n_layer, c->n_embd,
           c->n_ffn, c->vocab);
    printf("parameters: %zu (%zu tensors); state: %zu floats a conversation; kernel %s\n",
           st_lm_model_weights(m)->n_params, st_lm_model_tensor_count(m), st_lm_state_len(m),
           st_lm_model_kernel(m));
    printf("tokenizer: %zu pieces, unknown token %d\n", st_lm_tokenizer_size(tok),
           (int)st_lm_tokenizer_unk(tok));
    st_lm_model_destroy(&m);
    return 0;
}

/* ---- dispatch --------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm SUBCOMMAND [OPTIONS]\n"
            "\n"
            "The spiking language model: SpikeGPT (RWKV-4 with a binary token embedding\n"
            "and a LIF neuron on the output of each block's two halves), one token at a\n"
            "time in constant memory, with its dense RWKV-4 twin as the control.\n"
            "\n"
            "subcommands:\n"
            "  golden DIR          check against a reference bundle; prints the largest\n"
            "                      deviations, exits 1 on a mismatch\n"
            "  generate            text from a prompt (greedy, temperature, top-k, top-p,\n"
            "                      repetition penalty, seeded)\n"
            "  convert IN OUT      store a model in our own format, with a tokenizer\n"
            "  info MODEL          what a model file holds\n"
            "  train               train it on a text file (C, BPTT; docs/LM.md)\n"
            "  eval                nats and bits per character on a text\n"
            "  dialogue            write the agent's dialogue corpus and held-out set\n"
            "  eval-reply          the agent's reply accuracy on held-out phrasings\n"
            "\n"
            "`spiketalk lm SUBCOMMAND --help` for each; the speed against PyTorch is\n"
            "`spiketalk bench lm`.\n");
}

int st_cmd_lm(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "golden"))
        return cmd_golden(argc - 1, argv + 1);
    if (!strcmp(argv[1], "generate"))
        return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "convert"))
        return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "train"))
        return st_cmd_lm_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval"))
        return st_cmd_lm_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval-reply"))
        return st_cmd_lm_eval_reply(argc - 1, argv + 1);
    if (!strcmp(argv[1], "dialogue"))
        return st_cmd_lm_dialogue(argc - 1, argv + 1);
    cli_fail(CMD, "no subcommand '%s' (golden, generate, convert, info, train, eval, "
                 "dialogue, eval-reply; see --help)", argv[1]);
    return 2;
}
