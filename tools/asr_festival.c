/*  tools/asr_festival.c - festival's voices for the recognizer's training
    words (asr-tool data --festival N; tools/asr_tool.c).

    Festival's library is C++ (Debian's festival-dev: a static
    libFestival.a over the Edinburgh Speech Tools), which would bring a
    C++ toolchain and runtime into this C tool for three voices of offline
    data; its own binary does the same work, so the recipe runs
    `festival -b` once per voice configuration on a Scheme script that
    synthesizes every word, saves
    each as a 16 kHz WAV in a temporary folder and prints where the word's
    segments start and end (festival's own segment times, the first and
    last that are not "pau"). The words are then cut at those times, 50 ms
    before and 100 ms after, as the espeak-ng and flite words are cut at
    their synthesizer's word times. Offline work for the training set only:
    nothing here runs on the audio path.

    What it may touch: a folder under $TMPDIR (or /tmp), removed at the end;
    the festival binary; audio/ to read the WAVs back. */
#include "asr_tool.h"

#include "../audio/audio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define RATE 16000

/* Words and the voice go into the script as they are: letters, digits and
   the characters of `also` only (a word: space, apostrophe, hyphen; a
   voice: underscore). */
static bool plain(const char *w, const char *also)
{
    if (!*w)
        return false;
    for (const char *c = w; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr(also, *c)))
            return false;
    return true;
}

static int run_festival(const char *script, const char *times, const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int out = open(times, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0)
            _exit(126);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execlp("festival", "festival", "-b", script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int asr_festival_words(const char *voice, double stretch, const char *const *words, size_t n,
                       asr_festival_cb cb, void *user)
{
    if (!plain(voice, "_")) {
        fprintf(stderr, "asr-tool: festival voice '%s' is not a voice name\n", voice);
        return -1;
    }
    char dir[1024], script[1100], times[1100], log[1100];
    if (st_tmpdir_make(dir, sizeof dir, "st-festival")) {
        fprintf(stderr, "asr-tool: %s\n", st_errmsg());
        return -1;
    }
    snprintf(script, sizeof script, "%s/say.scm", dir);
    snprintf(times, sizeof times, "%s/times", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    FILE *f = fopen(script, "w");
    if (!f) {
        fprintf(stderr, "asr-tool: cannot write %s: %s\n", script, strerror(errno));
        st_tmpdir_remove(dir, NULL);
        return -1;
    }
    /* st_say: synthesize, save at 16 kHz, print "k start end" (seconds) of
       the segments that are not pauses */
    fprintf(f, "(define (st_say k text file)\n"
               "  (let ((utt (SynthText text)) (s -1) (e 0))\n"
               "    (utt.wave.resample utt %d)\n"
               "    (utt.save.wave utt file 'riff)\n"
               "    (mapcar (lambda (x) (if (not (string-equal (item.name x) \"pau\"))\n"
               "        (begin (if (< s 0) (set! s (item.feat x 'segment_start)))\n"
               "               (set! e (item.feat x 'end)))))\n"
               "      (utt.relation.items utt 'Segment))\n"
               "    (format t \"%%d %%f %%f\\n\" k s e)))\n"
               "(voice_%s)\n(Parameter.set 'Duration_Stretch %.3f)\n",
            RATE, voice, stretch);
    for (size_t k = 0; k < n; k++)
        if (plain(words[k], " '-"))
            fprintf(f, "(st_say %zu \"%s\" \"%s/w%04zu.wav\")\n", k, words[k], dir, k);
    if (fclose(f) != 0) {
        fprintf(stderr, "asr-tool: cannot write %s: %s\n", script, strerror(errno));
        st_tmpdir_remove(dir, NULL);
        return -1;
    }
    int rc = run_festival(script, times, log);
    FILE *t = rc == 0 ? fopen(times, "r") : NULL;
    if (!t && rc == 127) {
        fprintf(stderr, "asr-tool: festival is not installed (voice %s); install it with "
                        "tools/deps\n", voice);
        st_tmpdir_remove(dir, NULL);
        return -1;
    }
    if (!t) { /* the log stays */
        st_tmpdir_remove(dir, "log");
        fprintf(stderr, "asr-tool: festival failed (voice %s, exit %d); its log: %s\n", voice, rc,
                log);
        return -1;
    }
    int made = 0;
    size_t k;
    double s, e;
    while (fscanf(t, "%zu %lf %lf", &k, &s, &e) == 3) {
        if (k >= n || s < 0 || e <= s)
            continue; /* a word festival said nothing for */
        char p[1100];
        snprintf(p, sizeof p, "%s/w%04zu.wav", dir, k);
        st_audio a = {0};
        if (st_audio_read(p, &a) != ST_OK || a.sample_rate_hz != RATE) {
            fprintf(stderr, "asr-tool: festival's %s (\"%s\"): %s\n", p, words[k],
                    a.samples ? "not 16 kHz" : st_errmsg());
            st_audio_free(&a);
            continue;
        }
        size_t from = (size_t)(s * RATE), to = (size_t)(e * RATE);
        from = from > 800 ? from - 800 : 0;
        to = to + 1600 < a.frames ? to + 1600 : a.frames;
        if (to > from + 400) {
            cb(a.samples + from, to - from, k, user);
            made++;
        }
        st_audio_free(&a);
    }
    fclose(t);
    if (made == 0 && n > 0) { /* e.g. the voice's package is missing: the log stays */
        st_tmpdir_remove(dir, "log");
        fprintf(stderr, "asr-tool: festival spoke none of %zu words with voice %s (is its "
                        "package installed? tools/deps); its log: %s\n", n, voice, log);
        return -1;
    }
    st_tmpdir_remove(dir, NULL);
    return made;
}
