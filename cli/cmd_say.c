/*  cli/cmd_say.c - `spiketalk say`: speak text to a WAV file through the
    synthesizer stage (espeak-ng or flite), with each word's start and end.

    The project's data generator: the same stage the voice agent streams
    from, run on a whole text (st_tts_synthesize), so what it writes is
    exactly what the agent would say. Touches only the files it is told to
    write. Workload: a sentence to a few pages per call.
*/
#include "cli.h"

#include "audio/audio.h"
#include "tts/tts.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk say \"TEXT\" -o OUT.wav [options]\n"
            "       spiketalk say --list-voices\n"
            "\n"
            "Speaks TEXT (several arguments are joined with spaces; '-' reads standard input)\n"
            "through spiketalk's synthesizer stage: the text is normalised (numbers, times,\n"
            "money, units, symbols), cut into pieces, synthesized, resampled, and written as\n"
            "a 16-bit WAV. With --words, each word's start and end (seconds) and the word as\n"
            "written go to a tab-separated file, one word a line: START END WORD (the\n"
            "format of Audacity's label tracks).\n"
            "\n"
            "options:\n"
            "  -o, --output FILE      the WAV file to write (required)\n"
            "  -e, --engine NAME      espeak (default) or flite\n"
            "  -v, --voice NAME       espeak: LANG[+VARIANT], e.g. en-us, en-gb-x-rp+f3;\n"
            "                         flite: kal16 (default), kal, awb, rms, slt\n"
            "  -r, --rate WPM         speaking rate, words per minute (80..450)\n"
            "  -p, --pitch P          0..100, 50 = the voice's own\n"
            "  -s, --sample-rate HZ   output rate (default: the voice's own)\n"
            "  -w, --words FILE       write word times (TSV: start_s end_s word)\n"
            "      --no-normalize     give the text to the engine as it is\n"
            "      --list-voices      list the engines' voices and espeak's variants\n"
            "\n"
            "examples:\n"
            "  spiketalk say \"It's 7:30, time to go.\" -o go.wav --words go.tsv\n"
            "  spiketalk say \"Hello there\" -o hi.wav --engine flite --voice slt -s 16000\n");
}

static int list_voices(void)
{
    static st_tts_voice_info v[256];
    for (int e = 0; st_tts_engine_name(e); e++) {
        const char *name = st_tts_engine_name(e);
        int n = st_tts_list_voices(name, v, 256);
        if (n < 0)
            return cli_fail_lib("say", n, "cannot list voices");
        printf("%s voices:\n", name);
        for (int i = 0; i < n && i < 256; i++)
            printf("  %-18s %c %6d Hz  %s\n", v[i].name, v[i].gender, v[i].native_rate_hz,
                   v[i].description);
    }
    int n = st_tts_list_variants(v, 256);
    if (n < 0)
        return cli_fail_lib("say", n, "cannot list espeak variants");
    printf("espeak variants (append to a voice as +NAME, e.g. en-us+%s):\n ",
           n > 0 ? v[0].name : "f3");
    for (int i = 0; i < n && i < 256; i++)
        printf(" %s", v[i].name);
    printf("\n");
    return 0;
}

static char *read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while (s && (n = fread(s + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *g = realloc(s, cap *= 2);
            if (!g) {
                free(s);
                return NULL;
            }
            s = g;
        }
    }
    if (s)
        s[len] = '\0';
    return s;
}

static int write_words(const char *path, const st_tts_result *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < r->n_words; i++)
        fprintf(f, "%.6f\t%.6f\t%s\n", (double)r->words[i].start / r->sample_rate_hz,
                (double)r->words[i].end / r->sample_rate_hz, r->words[i].text);
    return fclose(f);
}

int st_cmd_say(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},  {"engine", required_argument, 0, 'e'},
        {"voice", required_argument, 0, 'v'},   {"rate", required_argument, 0, 'r'},
        {"pitch", required_argument, 0, 'p'},   {"sample-rate", required_argument, 0, 's'},
        {"words", required_argument, 0, 'w'},   {"no-normalize", no_argument, 0, 'N'},
        {"list-voices", no_argument, 0, 'L'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *cmd = "say";
    st_tts_params p = st_tts_default_params();
    const char *out_path = NULL, *words_path = NULL;
    long l;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:e:v:r:p:s:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out_path = optarg; break;
        case 'e': p.engine = optarg; break;
        case 'v': p.voice = optarg; break;
        case 'r':
            if (!cli_parse_int(cmd, "--rate", optarg, 80, 450, &l))
                return 2;
            p.rate_wpm = (int)l;
            break;
        case 'p':
            if (!cli_parse_int(cmd, "--pitch", optarg, 0, 100, &l))
                return 2;
            p.pitch = (int)l;
            break;
        case 's':
            if (!cli_parse_int(cmd, "--sample-rate", optarg, 4000, 384000, &l))
                return 2;
            p.sample_rate_hz = (int)l;
            break;
        case 'w': words_path = optarg; break;
        case 'N': p.normalize = false; break;
        case 'L': return list_voices();
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind == argc)
        return cli_fail(cmd, "no text to say (see --help)"), 2;
    if (!out_path)
        return cli_fail(cmd, "--output FILE is required (see --help)"), 2;

    /* the text: the arguments joined, or standard input */
    char *text = NULL;
    if (argc - optind == 1 && !strcmp(argv[optind], "-")) {
        text = read_stdin();
    } else {
        size_t len = 1;
        for (int a = optind; a < argc; a++)
            len += strlen(argv[a]) + 1;
        text = malloc(len);
        if (text) {
            text[0] = '\0';
            for (int a = optind; a < argc; a++) {
                if (a > optind)
                    strcat(text, " ");
                strcat(text, argv[a]);
            }
        }
    }
    if (!text)
        return cli_fail(cmd, "out of memory");
    if (strlen(text) + 1 > p.text_capacity)
        p.text_capacity = strlen(text) + 1;

    int rc = ST_OK;
    st_tts *t = st_tts_new(&p, &rc);
    if (!t) {
        free(text);
        return cli_fail_lib(cmd, rc, "cannot start the synthesizer");
    }
    st_tts_result r;
    rc = st_tts_synthesize(t, text, &r);
    free(text);
    st_tts_destroy(&t);
    if (rc)
        return cli_fail_lib(cmd, rc, "synthesis failed");
    int status = 0;
    if (r.frames == 0)
        status = cli_fail(cmd, "the text has nothing to say (no speakable words)");
    else if ((rc = st_audio_write_wav(out_path, r.samples, r.frames, r.sample_rate_hz,
                                      ST_WAV_PCM16)))
        status = cli_fail_lib(cmd, rc, "cannot write the audio");
    else if (words_path && write_words(words_path, &r))
        status = cli_fail(cmd, "cannot write '%s'", words_path);
    st_tts_result_free(&r);
    return status;
}
