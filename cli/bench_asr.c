/*  cli/bench_asr.c - `spiketalk bench asr`: the spiking recognizer against
    pocketsphinx on the same Speech Commands clips, in the same run.

    The peer is Debian's pocketsphinx_batch (pocketsphinx 0.8, the en-us
    acoustic model and dictionary of pocketsphinx-en-us) with a JSGF grammar
    of exactly the recognizer's vocabulary words, one word per utterance.
    Both see every clip at 16 kHz (the peer as 16-bit WAV files written to
    a temporary folder). Both answers are mapped to the 12 labels the same
    way: a Speech Commands word is itself, any other vocabulary word is
    _unknown_, no word is _silence_. CPU time: ours is this process's CPU
    around features + network; the peer's is its child process's user +
    system time (it includes loading its models, reported separately as
    the time on a one-clip run).
*/
#include "cli.h"

#include "audio/audio.h"
#include "snn/asr.h"
#include "tts/tts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PS_MODEL "/usr/share/pocketsphinx/model/en-us"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

/* Runs pocketsphinx_batch over dir/ctl; returns its exit status, *cpu its CPU. */
static int run_ps(const char *dir, const char *ctl, const char *hyp, double *cpu)
{
    char gram[1100];
    snprintf(gram, sizeof gram, "%s/words.gram", dir);
    double c0 = children_cpu();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("pocketsphinx_batch", "pocketsphinx_batch", "-hmm", PS_MODEL "/en-us", "-dict",
               PS_MODEL "/cmudict-en-us.dict", "-jsgf", gram, "-ctl", ctl, "-cepdir", dir,
               "-cepext", ".wav", "-adcin", "yes", "-adchdr", "44", "-hyp", hyp, "-logfn",
               "/dev/null", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    *cpu = children_cpu() - c0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Word-emission latency on synthetic speech with known word ends: n
   utterances of three vocabulary words (espeak-ng, voices and rates drawn
   from a seed), streamed frame by frame. For each true word, the first
   emitted event of the same word whose window overlaps it counts as a hit;
   its latency is the emission's decision stamp minus the word's end.
   Fills lat[] (ms) and returns the hits; *n_words gets the true words and
   *n_events every emitted vocabulary word. */
static size_t emission_latency(const st_asr *a, st_frontend *fe, int n_utt, double *lat,
                               size_t *n_words, size_t *n_events)
{
    size_t hits = 0;
    *n_words = *n_events = 0;
    uint64_t seed = 12345;
    const char *voices[] = {"en-us", "en", "en-gb-scotland", "en-029"};
    size_t nf = st_asr_features(a), hop = st_frontend_hop_samples(fe);
    float feat[16 * 256];
    uint64_t stamp[16];
    for (int u = 0; u < n_utt; u++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        st_tts_params p = st_tts_default_params();
        p.voice = voices[(seed >> 33) % 4];
        p.rate_wpm = 140 + (int)((seed >> 40) % 80);
        p.sample_rate_hz = ST_PIPELINE_RATE_HZ;
        int err = 0;
        st_tts *t = st_tts_new(&p, &err);
        if (!t)
            continue;
        char text[256];
        int truth[3];
        size_t len = 0;
        for (int w = 0; w < 3; w++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            truth[w] = 2 + (int)((seed >> 35) % (st_asr_classes(a) - 2));
            len += (size_t)snprintf(text + len, sizeof text - len, "%s. ", st_asr_word(a, (size_t)truth[w]));
        }
        st_tts_result r = {0};
        if (st_tts_synthesize(t, text, &r) != ST_OK || r.n_words != 3) {
            st_tts_result_free(&r);
            st_tts_destroy(&t);
            continue;
        }
        /* a second of silence after the last word lets its decision come out */
        size_t n = r.frames + ST_PIPELINE_RATE_HZ;
        float *x = calloc(n, sizeof *x);
        memcpy(x, r.samples, r.frames * sizeof *x);
        for (size_t i = 0; i < n; i++)
            x[i] += (float)((double)((i * 2654435761u) % 1000) / 1000.0 - 0.5) * 2e-4f;
        int e2 = 0;
        st_asr_stream *s = st_asr_stream_new(a, NULL, &e2);
        bool used[3] = {false, false, false};
        st_frontend_reset(fe, 0);
        for (size_t pos = 0; s && pos < n; pos += hop) {
            size_t l = n - pos < hop ? n - pos : hop, us = 0, made = 0;
            st_frontend_process(fe, x + pos, l, feat, stamp, 16, &us, &made);
            for (size_t j = 0; j < made; j++) {
                st_asr_event ev;
                if (st_asr_stream_push(s, feat + j * nf, stamp[j], &ev, NULL) != 1 ||
                    ev.word < 2)
                    continue;
                (*n_events)++;
                for (int w = 0; w < 3; w++) {
                    /* the emission window may lag the word: allow 300 ms */
                    if (used[w] || ev.word != truth[w] || ev.end_stamp < r.words[w].start ||
                        ev.start_stamp > r.words[w].end + 4800)
                        continue;
                    used[w] = true;
                    lat[hits++] = ((double)ev.decided_stamp - (double)r.words[w].end) * 1000.0 /
                                  ST_PIPELINE_RATE_HZ;
                    break;
                }
            }
        }
        *n_words += 3;
        st_asr_stream_destroy(&s);
        free(x);
        st_tts_result_free(&r);
        st_tts_destroy(&t);
    }
    return hits;
}

int st_bench_asr(int argc, char **argv)
{
    const char *manifest = "build/asr/test_sc12.tsv", *model = "models/asr.stm";
    long max_clips = 200;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--manifest") && i + 1 < argc)
            manifest = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--clips") && i + 1 < argc) {
            if (!cli_parse_int("bench asr", "--clips", argv[++i], 1, 100000, &max_clips))
                return 2;
        } else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: spiketalk bench asr [--manifest M] [--model F] [--clips N] [--json]\n"
                   "  M: Speech Commands layout (path label12 word speaker); default the held-out\n"
                   "  speakers of `make asr-data` (build/asr/test_sc12.tsv); N clips (200)\n");
            return 0;
        } else
            return cli_fail("bench asr", "unknown option '%s'", argv[i]) + 1;
    }
    int err = 0;
    st_asr *a = st_asr_load(model, &err);
    if (!a)
        return cli_fail_lib("bench asr", err, model);
    cli_asr_row *rows = NULL;
    size_t n_rows = 0, bad_rows = 0; /* rows without their fields: named on stderr */
    if (cli_asr_read_manifest("bench asr", manifest, true, false, &rows, &n_rows, &bad_rows)) {
        st_asr_destroy(&a);
        return cli_fail("bench asr", "(`make asr-data` writes the default, build/asr/test_sc12.tsv)");
    }
    char dir[1024];
    if (st_tmpdir_make(dir, sizeof dir, "spiketalk-bench-asr")) {
        cli_asr_free_rows(rows, n_rows);
        st_asr_destroy(&a);
        return cli_fail("bench asr", "%s", st_errmsg());
    }
    /* grammar of the vocabulary words */
    char path[1200], ctl[1200], hyp[1200];
    snprintf(path, sizeof path, "%s/words.gram", dir);
    snprintf(ctl, sizeof ctl, "%s/list.ctl", dir);
    snprintf(hyp, sizeof hyp, "%s/out.hyp", dir);
    FILE *g = fopen(path, "w"), *cf = fopen(ctl, "w");
    if (!g || !cf) {
        int e = errno;
        if (g)
            fclose(g);
        if (cf)
            fclose(cf);
        st_tmpdir_remove(dir, NULL);
        cli_asr_free_rows(rows, n_rows);
        st_asr_destroy(&a);
        return cli_fail("bench asr", "cannot write in %s: %s", dir, strerror(e));
    }
    fprintf(g, "#JSGF V1.0;\ngrammar words;\npublic <word> = ");
    for (size_t k = 2; k < st_asr_classes(a); k++)
        fprintf(g, "%s%s", k > 2 ? " | " : "", st_asr_word(a, k));
    fprintf(g, ";\n");
    fclose(g);
    st_frontend_params fp = st_frontend_default_params();
    st_frontend *fe = st_frontend_new(&fp, &err);
    int *truth = calloc((size_t)max_clips, sizeof *truth), *ours = calloc((size_t)max_clips, sizeof *ours);
    float feat[200 * 64];
    char line[4096];
    long n = 0;
    double our_cpu = 0, audio_s = 0;
    long unreadable = 0; /* each named on stderr; with bad_rows, counted in a note */
    for (size_t k = 0; k < n_rows && n < max_clips; k++) {
        const cli_asr_row *w = &rows[k];
        if (cli_sc12_label(w->label) < 0) {
            cli_fail("bench asr", "%s:%ld: expected path, label12 (one of the 12 classes), word, speaker",
                     manifest, w->line);
            bad_rows++;
            continue;
        }
        float *x = NULL;
        size_t len = 0;
        if (cli_asr_read16k(w->path, &x, &len) != ST_OK) {
            cli_fail_lib("bench asr", ST_ERR_IO, w->path);
            unreadable++;
            continue;
        }
        double c0 = cpu_now();
        size_t made = 0;
        cli_asr_clip_features(x, len, fe, feat, 200, &made);
        int best = st_asr_classify(a, feat, made, st_asr_default_pool(a), NULL);
        our_cpu += cpu_now() - c0;
        ours[n] = cli_sc12_of_word(st_asr_word(a, (size_t)best));
        truth[n] = cli_sc12_label(w->label);
        audio_s += (double)len / ST_PIPELINE_RATE_HZ;
        snprintf(path, sizeof path, "%s/c%05ld.wav", dir, n);
        st_audio_write_wav(path, x, len, ST_PIPELINE_RATE_HZ, ST_WAV_PCM16);
        fprintf(cf, "c%05ld\n", n);
        free(x);
        n++;
    }
    fclose(cf);
    cli_asr_free_rows(rows, n_rows);
    if (n == 0) { /* nothing to compare: a table of zeros would read as 0 % */
        st_tmpdir_remove(dir, NULL);
        free(truth);
        free(ours);
        st_frontend_destroy(&fe);
        st_asr_destroy(&a);
        return cli_fail("bench asr", "manifest '%s' gives no clip to run (%ld rows not in its layout, "
                        "%ld clips unreadable)", manifest, (long)bad_rows, unreadable);
    }
    double ps_cpu = 0, ps_wall = st_now_s();
    int rc = run_ps(dir, ctl, hyp, &ps_cpu);
    ps_wall = st_now_s() - ps_wall;
    long ps_ok = 0, our_ok = 0, ps_n = 0;
    int *ps = calloc((size_t)(n ? n : 1), sizeof *ps);
    for (long k = 0; k < n; k++)
        ps[k] = 11;
    FILE *hf = rc == 0 ? fopen(hyp, "r") : NULL;
    if (hf) {
        while (fgets(line, sizeof line, hf)) {
            /* "word (c00012 -1234)" or " (c00012 ...)" for no word */
            char *paren = strrchr(line, '(');
            long id = -1;
            if (!paren || sscanf(paren, "(c%ld", &id) != 1 || id < 0 || id >= n)
                continue;
            *paren = 0;
            char *w = strtok(line, " \t");
            ps[id] = cli_sc12_of_word(w);
            ps_n++;
        }
        fclose(hf);
    }
    for (long k = 0; k < n; k++) {
        our_ok += ours[k] == truth[k];
        ps_ok += ps[k] == truth[k];
    }
    report r;
    report_init(&r, "asr", "recognizer vs pocketsphinx, Speech Commands 12 classes", argc, argv);
    report_col_text(&r, "system");
    report_col_num(&r, "clips", "");
    report_col_num(&r, "accuracy", "%");
    report_col_num(&r, "cpu_s", "s");
    report_col_num(&r, "rtf", "");
    int row = report_row(&r);
    report_set_text(&r, row, "system", "spiketalk snn");
    report_set_num(&r, row, "clips", (double)n);
    report_set_num(&r, row, "accuracy", n ? 100.0 * our_ok / n : 0);
    report_set_num(&r, row, "cpu_s", our_cpu);
    report_set_num(&r, row, "rtf", audio_s > 0 ? our_cpu / audio_s : 0);
    row = report_row(&r);
    report_set_text(&r, row, "system", rc == 0 ? "pocketsphinx jsgf" : "pocketsphinx (failed)");
    report_set_num(&r, row, "clips", (double)n);
    report_set_num(&r, row, "accuracy", n && rc == 0 ? 100.0 * ps_ok / n : 0);
    report_set_num(&r, row, "cpu_s", ps_cpu);
    report_set_num(&r, row, "rtf", audio_s > 0 ? ps_cpu / audio_s : 0);
    report_note(&r, "manifest %s, model %s; %.1f s of audio; pocketsphinx wall %.2f s, %ld hypotheses, exit %d",
                manifest, model, audio_s, ps_wall, ps_n, rc);
    if (bad_rows || unreadable)
        report_note(&r, "left out of both systems: %ld rows not in the manifest's layout, %ld clips unreadable "
                    "(each named above)", (long)bad_rows, unreadable);
    double lat[64 * 3];
    size_t n_words = 0, n_events = 0;
    size_t hits = emission_latency(a, fe, 64, lat, &n_words, &n_events);
    if (hits) {
        qsort(lat, hits, sizeof *lat, cli_cmp_double);
        report_note(&r, "streaming on 64 espeak-ng utterances of 3 vocabulary words: %zu of %zu words emitted "
                    "(%zu emissions); latency after the word's end p50 %.0f ms, p95 %.0f ms",
                    hits, n_words, n_events, lat[hits / 2], lat[(size_t)(hits * 0.95)]);
    } else {
        report_note(&r, "streaming on 64 espeak-ng utterances: no word emitted (%zu true words, %zu emissions)",
                    n_words, n_events);
    }
    report_note(&r, "pocketsphinx CPU includes loading its model; clips without a hypothesis count as _silence_");
    report_print(&r, json, stdout);
    st_tmpdir_remove(dir, NULL);
    free(ps);
    free(truth);
    free(ours);
    st_frontend_destroy(&fe);
    st_asr_destroy(&a);
    return 0;
}
