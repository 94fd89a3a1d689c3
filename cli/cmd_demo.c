/*  cli/cmd_demo.c - `spiketalk demo`: the voice agent in a scripted
    conversation on virtual devices, no sound card needed; or, with
    --input FILE, the agent listening to any recording.

    The script's user turns are synthesized with a voice other than the
    agent's and placed at realistic times: each a short gap after the
    agent's answer ends, one cough and one interruption while it speaks,
    one pause inside a request. The microphone hears the user, a little
    background noise and the agent's own voice through a simulated room
    (audio/'s st_room: 10 ms direct path at gain 0.5, RT60 300 ms).
    Everything runs through pipeline/agent.c block by block (virtual time:
    the same conversation, to the sample, on every run; --realtime paces it
    to the wall clock). The conversation is printed as it happens, both
    sides go to one stereo WAV (left: the microphone, right: the speaker),
    and a latency summary closes it.

    Also the helpers `spiketalk live` shares: where the models are.
*/
#include "cli.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "tts/tts.h"

#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RATE ST_PIPELINE_RATE_HZ
#define BLOCK ST_AGENT_BLOCK
#define MAX_S 180
#define MAX_LAT 256

/* ---- models: --model, the environment, ./models, models/ beside build/ -------- */

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

const char *cli_agent_find_model(const char *given, const char *env, const char *rel, char *buf,
                                 size_t cap)
{
    if (given)
        return given;
    const char *e = env ? getenv(env) : NULL;
    if (e && *e)
        return e;
    if (!rel)
        return NULL;
    if (exists(rel)) {
        snprintf(buf, cap, "%s", rel);
        return buf;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        snprintf(buf, cap, "%s/../%s", dirname(exe), rel);
        if (exists(buf))
            return buf;
    }
    return NULL;
}

const char *cli_vad_model(const char *given, bool learned_default, char *buf, size_t cap)
{
    if (given && !strcmp(given, "none"))
        return NULL;
    return cli_agent_find_model(given, "SPIKETALK_VAD_MODEL",
                                learned_default ? CLI_VAD_MODEL : NULL, buf, cap);
}

const char *cli_agent_asr(const char *cmd, const char *given, char *buf, size_t cap)
{
    const char *path = cli_agent_find_model(given, "SPIKETALK_ASR_MODEL", CLI_AGENT_ASR, buf, cap);
    if (!path)
        cli_fail(cmd, "no recognizer: " CLI_AGENT_ASR " is not here nor beside the binary "
                      "(give --asr FILE or set SPIKETALK_ASR_MODEL; make train-asr-stream builds it)");
    return path;
}

/* ---- the script ------------------------------------------------------------ */

typedef enum { AFTER_ANSWER, WHILE_SPEAKING } when;

typedef struct {
    when at;             /* what the gap counts from */
    double gap_s;        /* after the agent's answer ends / starts */
    const char *says;    /* what the user's synthesizer says; NULL: a cough */
    double pause_s;      /* > 0: a pause inside the request, then `rest` */
    const char *rest;
    const char *note;    /* what this line shows */
} line;

/*  The user asks in whole sentences, as people do; the streaming recognizer
    (models/asr_stream.stm) hears the words of its vocabulary in them and the
    dialogue model answers those. The pause inside the timer request is half
    a second, a hesitation; the standard scenarios (scenarios/pauses.ini)
    measure pauses of a second and more. */
static const line script[] = {
    {AFTER_ANSWER, 0.8, "hello.", 0, NULL, NULL},
    {AFTER_ANSWER, 0.7, "what is seven times six?", 0, NULL, NULL},
    {AFTER_ANSWER, 0.7, "tell me a story.", 0, NULL, NULL}, /* a long answer to interrupt */
    {WHILE_SPEAKING, 1.2, NULL, 0, NULL, "a cough while the agent speaks: it must go on"},
    {WHILE_SPEAKING, 2.6, "set a timer for", 0.5, "five minutes.",
     "an interruption, with a pause inside the request"},
    {AFTER_ANSWER, 0.7, "count to three.", 0, NULL, NULL},
    {AFTER_ANSWER, 0.7, "goodbye.", 0, NULL, NULL},
};
#define N_LINES (sizeof script / sizeof script[0])

typedef struct {
    float *x;
    size_t n;
    size_t first;            /* its first sound (the synthesizer leads with silence) */
    char text[160];
} clip;

/* Where a clip's sound starts: its first sample above -60 dBFS. */
static void find_first(clip *c)
{
    c->first = 0;
    while (c->first < c->n && fabsf(c->x[c->first]) < 1e-3f)
        c->first++;
}

/* A cough: 150 ms of noise shaped like a burst of breath, deterministic. */
static void cough(clip *c)
{
    c->n = (size_t)(0.15 * RATE);
    c->x = calloc(c->n, sizeof(float));
    if (!c->x)
        return;
    uint32_t s = 12345;
    float y = 0;
    for (size_t i = 0; i < c->n; i++) {
        s = s * 1664525u + 1013904223u;
        float w = ((float)(s >> 8) / 16777216.0f - 0.5f);
        y = 0.6f * y + w; /* a little low-pass */
        double t = (double)i / c->n;
        c->x[i] = (float)(0.25 * y * sin(M_PI * t) * (1 - t));
    }
    snprintf(c->text, sizeof c->text, "(cough)");
}

static int synth_line(st_tts *tts, const line *l, clip *c)
{
    if (!l->says) {
        cough(c);
        return c->x ? ST_OK : ST_ERR_NOMEM;
    }
    st_tts_result a = {0}, b = {0};
    int rc = st_tts_synthesize(tts, l->says, &a);
    if (rc)
        return rc;
    size_t pause = (size_t)(l->pause_s * RATE);
    if (l->rest && (rc = st_tts_synthesize(tts, l->rest, &b))) {
        st_tts_result_free(&a);
        return rc;
    }
    c->n = a.frames + (l->rest ? pause + b.frames : 0);
    c->x = calloc(c->n ? c->n : 1, sizeof(float));
    if (c->x) {
        memcpy(c->x, a.samples, a.frames * sizeof(float));
        if (l->rest)
            memcpy(c->x + a.frames + pause, b.samples, b.frames * sizeof(float));
    }
    if (l->rest)
        snprintf(c->text, sizeof c->text, "%s ... (%.1f s) ... %s", l->says, l->pause_s, l->rest);
    else
        snprintf(c->text, sizeof c->text, "%s", l->says);
    st_tts_result_free(&a);
    st_tts_result_free(&b);
    return c->x ? ST_OK : ST_ERR_NOMEM;
}

/* ---- the run ----------------------------------------------------------------- */

typedef struct {
    bool scripted, quiet;
    size_t total;            /* samples of the session */
    float *mic, *spk;        /* the two tracks (mic: what the agent heard) */
    float *user;             /* the user's track (scripted), before noise and echo */
    clip clips[N_LINES];
    size_t next;             /* the next script line */
    uint64_t armed[N_LINES]; /* where each line is placed (0: not yet) */
    uint64_t line_end;       /* where the latest placed line ends */
    uint64_t last_activity;
    bool finished;           /* the script is through and the agent done */
    uint64_t finish_at;
    char heard[512];         /* the recognizer's words since the last request */
    char answer[1024];
    char refused[128];       /* the answer's refused tool call ("" none) */
    uint32_t answer_epoch, speaking_epoch; /* of the latest ANSWER / SPEAKING (0: printed) */
    st_agent_event speak;    /* the latest SPEAKING */
    st_agent_pub *pub;       /* --publish: turn changes on a PUB socket; NULL none */
    double speak_ms;
    uint64_t request_decided;
    /* figures */
    double v2v[MAX_LAT], eot[MAX_LAT], comp[MAX_LAT], silence[MAX_LAT];
    int n_v2v, n_eot, n_comp, n_sil;
    int false_pauses, resumes, interruptions;
} demo;

static double sec(uint64_t s)
{
    return (double)s / RATE;
}

/* The placed script line sounding at `at` (from its first sound to 0.3 s
   after its end), or -1. */
static int line_sounding(const demo *d, uint64_t at)
{
    for (size_t i = d->next; i-- > 0;) {
        uint64_t a = d->armed[i];
        if (a && at >= a + d->clips[i].first && at <= a + d->clips[i].n + (uint64_t)(0.3 * RATE))
            return (int)i;
    }
    return -1;
}

static void place(demo *d, size_t i, uint64_t at)
{
    d->armed[i] = at;
    const clip *c = &d->clips[i];
    for (size_t k = 0; k < c->n && at + k < d->total; k++)
        d->user[at + k] += c->x[k];
    d->line_end = at + c->n;
}

/* Arms the next lines that count from this event. */
static void arm(demo *d, when w, uint64_t from)
{
    for (size_t i = d->next; i < N_LINES && script[i].at == w; i++) {
        if (d->armed[i])
            continue;
        d->armed[i] = from + (uint64_t)(script[i].gap_s * RATE);
        if (w == AFTER_ANSWER)
            break;
    }
}

/* The agent's line, once both its first sound and its whole text are known. */
static void print_answer(demo *d)
{
    printf("  %6.2f s  agent: \"%s\"\n", sec(d->speak.sample), d->answer);
    if (d->refused[0])
        printf("             (not done: the dialogue model's call [%s] holds a number nobody "
               "said, or does not read; the agent asks again)\n",
               d->refused);
    printf("             (first sound %.0f ms after the user stopped; %.1f ms of compute to the "
           "first sample: LM's first token %.1f, first words %.1f, synthesizer's first audio "
           "%.1f)\n",
           d->speak_ms, d->speak.compute_ms, d->speak.lm_first_ms, d->speak.lm_piece_ms,
           d->speak.tts_first_ms);
    d->answer_epoch = d->speaking_epoch = 0;
}

static void on_event(const st_agent_event *e, void *user_data)
{
    demo *d = user_data;
    if (d->pub && st_agent_pub_event(d->pub, e) && !d->quiet)
        fprintf(stderr, "spiketalk demo: publishing: %s\n", st_errmsg());
    switch (e->kind) {
    case ST_AGENT_EV_STATE:
        if (!d->quiet && getenv("SPIKETALK_DEMO_STATES"))
            printf("  %6.2f s  [%s -> %s]\n", sec(e->sample), st_turn_state_name(e->from),
                   st_turn_state_name(e->to));
        break;
    case ST_AGENT_EV_ONSET:
        d->last_activity = e->sample;
        break;
    case ST_AGENT_EV_WORD: {
        size_t l = strlen(d->heard);
        snprintf(d->heard + l, sizeof d->heard - l, "%s%s", l ? " " : "", e->text);
        break;
    }
    case ST_AGENT_EV_REQUEST:
        if (d->n_eot < MAX_LAT)
            d->eot[d->n_eot++] = (double)(e->sample - e->ref) * 1000.0 / RATE;
        d->request_decided = e->sample;
        printf("  %6.2f s  user : \"%s\"\n", sec(e->ref), e->text);
        printf("             (turn ended %.0f ms after the user stopped; all the recognizer heard: "
               "%s)\n",
               (double)(e->sample - e->ref) * 1000.0 / RATE, d->heard);
        d->heard[0] = '\0';
        break;
    case ST_AGENT_EV_ANSWER:
        /* the answer streams: written before or after its first sound */
        snprintf(d->answer, sizeof d->answer, "%s", e->text);
        snprintf(d->refused, sizeof d->refused, "%s", e->refused ? e->refused : "");
        d->answer_epoch = e->epoch;
        if (d->speaking_epoch == e->epoch)
            print_answer(d);
        break;
    case ST_AGENT_EV_SPEAKING: {
        double ms = (double)(e->sample - e->ref) * 1000.0 / RATE;
        if (d->n_v2v < MAX_LAT)
            d->v2v[d->n_v2v++] = ms;
        if (d->n_comp < MAX_LAT)
            d->comp[d->n_comp++] = e->compute_ms;
        d->speak = *e;
        d->speak_ms = ms;
        d->speaking_epoch = e->epoch;
        if (d->answer_epoch == e->epoch)
            print_answer(d);
        arm(d, WHILE_SPEAKING, e->sample);
        break;
    }
    case ST_AGENT_EV_PAUSED: {
        /* measured from the script's truth: the line's first sound */
        int i = line_sounding(d, e->sample);
        double ms = i >= 0 ? (double)(e->sample - d->armed[i] - d->clips[i].first) * 1000.0 / RATE
                           : 0;
        if (i < 0) {
            d->false_pauses++;
            printf("  %6.2f s  ...  the agent paused for no user (echo?)\n", sec(e->sample));
        } else if (!script[i].says) {
            printf("  %6.2f s  ...  the agent paused for the cough, %.0f ms after it began\n",
                   sec(e->sample), ms);
        } else {
            if (d->n_sil < MAX_LAT)
                d->silence[d->n_sil++] = ms;
            printf("  %6.2f s  ...  the user speaks over the agent: the agent is silent %.0f ms "
                   "after the user's first sound\n", sec(e->sample), ms);
        }
        break;
    }
    case ST_AGENT_EV_RESUMED:
        d->resumes++;
        printf("  %6.2f s  ...  it was nothing (too short, no word): the agent goes on\n",
               sec(e->sample));
        break;
    case ST_AGENT_EV_INTERRUPTED:
        d->interruptions++;
        printf("  %6.2f s  ...  interrupted; the user heard only: \"%s\"\n", sec(e->sample),
               e->text && *e->text ? e->text : "(nothing)");
        break;
    case ST_AGENT_EV_DONE:
        arm(d, AFTER_ANSWER, e->sample);
        break;
    case ST_AGENT_EV_OFFSET: break;
    }
}

static int write_stereo(const char *path, const float *l, const float *r, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return st_error(ST_ERR_IO, "cannot create %s", path);
    uint32_t data = (uint32_t)(n * 4), rate = RATE, byte_rate = RATE * 4, riff = 36 + data,
             fmt_len = 16;
    uint16_t pcm = 1, ch = 2, align = 4, bits = 16;
    fwrite("RIFF", 1, 4, f);
    fwrite(&riff, 4, 1, f);
    fwrite("WAVEfmt ", 1, 8, f);
    fwrite(&fmt_len, 4, 1, f);
    fwrite(&pcm, 2, 1, f);
    fwrite(&ch, 2, 1, f);
    fwrite(&rate, 4, 1, f);
    fwrite(&byte_rate, 4, 1, f);
    fwrite(&align, 2, 1, f);
    fwrite(&bits, 2, 1, f);
    fwrite("data", 1, 4, f);
    fwrite(&data, 4, 1, f);
    for (size_t i = 0; i < n; i++) {
        int16_t s[2];
        for (int c = 0; c < 2; c++) {
            float v = (c ? r : l)[i];
            v = v > 1 ? 1 : v < -1 ? -1 : v;
            s[c] = (int16_t)lrintf(v * 32767);
        }
        fwrite(s, 2, 2, f);
    }
    if (fclose(f))
        return st_error(ST_ERR_IO, "cannot write %s", path);
    return ST_OK;
}

static void usage(void)
{
    printf("usage: spiketalk demo [--input FILE] [--output FILE] [--realtime] [options]\n\n"
           "The voice agent in a scripted conversation on virtual devices (no sound card):\n"
           "the user's turns are synthesized with another voice than the agent's, at\n"
           "realistic times, with one cough and one interruption while the agent speaks and\n"
           "one pause inside a request; the microphone also hears the agent through a\n"
           "simulated room. Prints the conversation as it happens and a latency summary;\n"
           "writes both sides to one stereo WAV (left: microphone, right: speaker).\n"
           "Runs in virtual time (the same figures on every run) unless --realtime.\n\n"
           "options:\n"
           "  -i, --input FILE     the microphone is this recording instead of the script\n"
           "  -o, --output FILE    the stereo WAV (default build/demo.wav)\n"
           "      --realtime       pace the blocks to the wall clock\n"
           "      --no-echo        no room echo of the agent's voice at the microphone\n"
           "      --model FILE     dialogue model (default: $SPIKETALK_DIALOGUE_MODEL,\n"
           "                       models/dialogue.stnn)\n"
           "      --vad FILE|none  the VAD's learned read-out, e.g. " CLI_VAD_MODEL "\n"
           "                       (default $SPIKETALK_VAD_MODEL, else none: hand-designed)\n"
           "      --asr FILE       recognizer model (default $SPIKETALK_ASR_MODEL,\n"
           "                       " CLI_AGENT_ASR ")\n"
           "      --user-voice V   the user's espeak voice (default en-gb-scotland)\n"
           "      --agent-voice V  the agent's espeak voice (default en-us)\n"
           "      --publish EP     publish every turn change on a ZeroMQ PUB socket bound to\n"
           "                       EP (tcp://127.0.0.1:5599, ipc:///tmp/turns): wire-protocol\n"
           "                       CONTROL TURN messages (docs/PROTOCOL.md, docs/AGENT.md)\n");
}

int st_cmd_demo(int argc, char **argv)
{
    enum { O_REALTIME = 1000, O_NO_ECHO, O_MODEL, O_ASR, O_UVOICE, O_AVOICE, O_PUBLISH, O_VAD };
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"output", required_argument, 0, 'o'},
                                         {"realtime", no_argument, 0, O_REALTIME},
                                         {"no-echo", no_argument, 0, O_NO_ECHO},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"asr", required_argument, 0, O_ASR},
                                         {"vad", required_argument, 0, O_VAD},
                                         {"user-voice", required_argument, 0, O_UVOICE},
                                         {"agent-voice", required_argument, 0, O_AVOICE},
                                         {"publish", required_argument, 0, O_PUBLISH},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *input = NULL, *output = "build/demo.wav", *model = NULL, *asr = NULL, *vad = NULL;
    const char *user_voice = "en-gb-scotland", *agent_voice = "en-us", *publish = NULL;
    bool realtime = false, echo = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case O_REALTIME: realtime = true; break;
        case O_NO_ECHO: echo = false; break;
        case O_MODEL: model = optarg; break;
        case O_ASR: asr = optarg; break;
        case O_VAD: vad = optarg; break;
        case O_UVOICE: user_voice = optarg; break;
        case O_AVOICE: agent_voice = optarg; break;
        case O_PUBLISH: publish = optarg; break;
        case 'h': usage(); return 0;
        default: return 2;
        }
    }
    char asr_buf[4200], lm_buf[4200], vad_buf[4200];
    const char *asr_path = cli_agent_asr("demo", asr, asr_buf, sizeof asr_buf);
    const char *vad_path = cli_vad_model(vad, false, vad_buf, sizeof vad_buf);
    if (!asr_path)
        return 1;
    const char *lm_path = cli_agent_find_model(model, "SPIKETALK_DIALOGUE_MODEL",
                                               "models/dialogue.stnn", lm_buf, sizeof lm_buf);

    demo *d = calloc(1, sizeof *d);
    if (!d)
        return cli_fail("demo", "out of memory");
    int rc = ST_OK, status = 1;
    st_agent *agent = NULL;
    st_room *room = NULL;
    float *input_x = NULL;
    size_t input_n = 0;
    d->scripted = !input;
    if (input) {
        if ((rc = cli_asr_read16k(input, &input_x, &input_n))) {
            cli_fail_lib("demo", rc, input);
            goto done;
        }
        d->total = input_n + 3 * RATE;
    } else {
        st_tts_params up = st_tts_default_params();
        up.voice = user_voice;
        up.sample_rate_hz = RATE;
        st_tts *utts = st_tts_new(&up, &rc);
        if (!utts) {
            cli_fail_lib("demo", rc, "the user's synthesizer");
            goto done;
        }
        for (size_t i = 0; i < N_LINES && !rc; i++)
            if (!(rc = synth_line(utts, &script[i], &d->clips[i])))
                find_first(&d->clips[i]);
        st_tts_destroy(&utts);
        if (rc) {
            cli_fail_lib("demo", rc, "synthesizing the user's lines");
            goto done;
        }
        d->total = (size_t)MAX_S * RATE;
    }
    d->mic = calloc(d->total + BLOCK, sizeof(float));
    d->spk = calloc(d->total + 2 * BLOCK, sizeof(float));
    d->user = calloc(d->total + BLOCK, sizeof(float));
    if (!d->mic || !d->spk || !d->user) {
        cli_fail("demo", "out of memory");
        goto done;
    }
    if (input)
        memcpy(d->user, input_x, input_n * sizeof(float));
    if (publish) {
        if (!(d->pub = st_agent_pub_new(publish, &rc))) {
            cli_fail_lib("demo", rc, "--publish");
            goto done;
        }
        printf("publishing turn changes on %s\n", publish);
        /* a subscriber started first reconnects every 100 ms: let it in */
        nanosleep(&(struct timespec){.tv_nsec = 300000000}, NULL);
    }

    st_agent_params ap = st_agent_default_params();
    ap.asr_model = asr_path;
    ap.vad_model = vad_path;
    ap.lm_model = lm_path;
    ap.tts_voice = agent_voice;
    ap.on_event = on_event;
    ap.user_data = d;
    if (d->scripted) { /* the same answers on every run: the clock reads 10:30 */
        ap.clock_hour = 10;
        ap.clock_minute = 30;
    }
    if (!(agent = st_agent_new(&ap, &rc))) {
        cli_fail_lib("demo", rc, "cannot start the agent");
        goto done;
    }
    printf("spiketalk demo: %s\n",
           d->scripted ? "a scripted conversation with the voice agent, on virtual devices"
                       : input);
    printf("  user voice %s, agent voice %s, %s, %s time; recognizer %s, VAD read-out %s, "
           "dialogue model %s\n",
           d->scripted ? user_voice : "(the recording)", agent_voice,
           echo && d->scripted ? "a room's echo on the microphone (canceller on)" : "no room echo",
           realtime ? "real" : "virtual", asr_path, vad_path ? vad_path : "hand-designed",
           lm_path ? lm_path : "MISSING");
    if (!lm_path)
        printf("  (no dialogue model: models/dialogue.stnn is not here; every answer says so)\n");
    printf("\n");
    if (d->scripted)
        d->armed[0] = (uint64_t)(script[0].gap_s * RATE);

    if (echo && d->scripted) {
        st_room_params rp = st_room_default_params(); /* 10 ms, gain 0.5, RT60 300 ms */
        if (!(room = st_room_new(&rp, &rc))) {
            cli_fail_lib("demo", rc, "the simulated room");
            goto done;
        }
    }
    double t0 = st_now_s();
    uint32_t noise = 7;
    uint64_t pos = 0;
    for (; pos + BLOCK <= d->total; pos += BLOCK) {
        /* The script: place every line whose time has come. */
        while (d->scripted && d->next < N_LINES && d->armed[d->next] &&
               d->armed[d->next] <= pos) {
            size_t i = d->next++;
            printf("  %6.2f s  (script: the user says \"%s\"%s%s)\n", sec(pos), d->clips[i].text,
                   script[i].note ? "; " : "", script[i].note ? script[i].note : "");
            place(d, i, pos);
        }
        /* Nothing answered the last line (the recognizer heard no word): go on. */
        if (d->scripted && d->next < N_LINES && !d->armed[d->next] && d->line_end &&
            pos > d->line_end + 3 * RATE && st_agent_state(agent) == ST_TURN_LISTENING) {
            printf("  %6.2f s  (script: no answer came; the user goes on)\n", sec(pos));
            while (d->next < N_LINES && script[d->next].at == WHILE_SPEAKING)
                d->next++; /* nothing to talk over */
            if (d->next < N_LINES)
                d->armed[d->next] = pos;
        }
        for (size_t k = 0; k < BLOCK; k++) {
            uint64_t t = pos + k;
            noise = noise * 1664525u + 1013904223u;
            float n = ((float)(noise >> 8) / 16777216.0f - 0.5f) * 0.002f; /* ~ -65 dBFS */
            d->mic[t] = d->user[t] + n;
        }
        if (room) /* what the speaker plays during this block comes back */
            st_room_process(room, d->spk + pos, d->mic + pos, BLOCK);
        uint32_t ep;
        if ((rc = st_agent_process(agent, d->mic + pos, d->spk + pos + BLOCK, &ep))) {
            cli_fail_lib("demo", rc, "the agent");
            goto done;
        }
        if (realtime) /* returns at once when the agent is behind */
            st_sleep_until_s(t0 + sec(pos + BLOCK));
        bool script_done = !d->scripted ? pos >= input_n : d->next >= N_LINES;
        if (script_done && pos > d->line_end && st_agent_state(agent) == ST_TURN_LISTENING) {
            if (!d->finish_at)
                d->finish_at = pos + RATE;
            if (pos >= d->finish_at)
                break;
        } else
            d->finish_at = 0;
    }
    size_t n = pos + BLOCK < d->total ? pos + BLOCK : d->total;
    double wall = st_now_s() - t0;
    st_agent_stats st;
    st_agent_get_stats(agent, &st);

    printf("\nthe conversation as the agent remembers it:\n");
    st_agent_turn h;
    for (size_t i = 0; st_agent_history(agent, i, &h); i++)
        printf("  %-5s %s%s\n", h.agent ? "agent" : "user", h.text,
               h.interrupted ? "  [interrupted: only what was played]" : "");

    printf("\nlatency summary (%zu answers, %.1f s of conversation in %.2f s: %.0fx real time)\n",
           (size_t)st.answers, sec(n), wall, sec(n) / wall);
    printf("  voice-to-voice round trip, end of user speech -> agent's first sample:\n");
    printf("    p50 %4.0f ms   p95 %4.0f ms   max %4.0f ms   (target 250 / 400 ms)\n",
           cli_percentile(d->v2v, d->n_v2v, 50), cli_percentile(d->v2v, d->n_v2v, 95),
           cli_percentile(d->v2v, d->n_v2v, 100));
    printf("  of which the end-of-turn wait: p50 %4.0f ms   p95 %4.0f ms\n",
           cli_percentile(d->eot, d->n_eot, 50), cli_percentile(d->eot, d->n_eot, 95));
    printf("  compute (decision -> first sample ready, wall clock): p50 %.1f ms   p95 %.1f ms\n",
           cli_percentile(d->comp, d->n_comp, 50), cli_percentile(d->comp, d->n_comp, 95));
    if (d->n_sil)
        printf("  barge-in, user onset -> agent silent: p50 %.0f ms   max %.0f ms   (target 150 ms)\n",
               cli_percentile(d->silence, d->n_sil, 50), cli_percentile(d->silence, d->n_sil, 100));
    printf("  interruptions %d, resumed after nothing %d, pauses with no user speaking %d, "
           "stale samples after a flush %llu\n",
           d->interruptions, d->resumes, d->false_pauses, (unsigned long long)st.stale_samples);
    if (output) {
        if ((rc = write_stereo(output, d->mic, d->spk, n)))
            cli_fail_lib("demo", rc, output);
        else
            printf("  both sides written to %s (left: microphone, right: speaker)\n", output);
    }
    status = rc ? 1 : 0;
done:
    st_room_destroy(&room);
    st_agent_destroy(&agent);
    st_agent_pub_destroy(&d->pub);
    for (size_t i = 0; i < N_LINES; i++)
        free(d->clips[i].x);
    free(d->mic);
    free(d->spk);
    free(d->user);
    free(d);
    free(input_x);
    return status;
}
