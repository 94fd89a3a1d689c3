/*  cli/cmd_replay.c - `spiketalk replay FILE`: what went through a pipeline,
    from a recording (a recorder stage, or `run --set pipeline.record=FILE`):
    one line per message with its type, turn, capture sample index, hops and
    the latency its hops add up to; or one JSON object per line. To play a
    recording back into a pipeline, use a `replay` stage. */
#include "cli.h"

#include "pipeline/pipeline.h"

#include <getopt.h>
#include <string.h>

static void content(const st_wire_msg *m, char *buf, size_t cap)
{
    switch (m->h.type) {
    case ST_MSG_PCM:
        snprintf(buf, cap, "%u frames at %u Hz", m->pcm.frames, m->pcm.rate_hz);
        break;
    case ST_MSG_SPIKES:
        snprintf(buf, cap, "%u spikes on %u channels", m->spikes.n_events, m->spikes.n_channels);
        break;
    case ST_MSG_WORDS: {
        size_t len = (size_t)snprintf(buf, cap, "%s:", m->words.flags & ST_WORDS_FINAL ? "final" : "partial");
        size_t cur = 0;
        st_wire_word w;
        while (st_wire_words_next(&m->words, &cur, &w) && len < cap)
            len += (size_t)snprintf(buf + len, cap - len, " %.*s", (int)w.text_bytes, w.text);
        break;
    }
    case ST_MSG_TEXT:
        snprintf(buf, cap, "\"%.*s\"%s", (int)(m->text.bytes < 60 ? m->text.bytes : 60), m->text.text,
                 m->text.flags & ST_TEXT_END ? " (end)" : "");
        break;
    case ST_MSG_CONTROL:
        snprintf(buf, cap, "%s %u", st_wire_ctl_name(m->control.cmd), m->control.arg);
        break;
    case ST_MSG_METRICS: snprintf(buf, cap, "%u figures", m->metrics.n); break;
    default: snprintf(buf, cap, "?"); break;
    }
}

static void json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

int st_cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'J'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    bool json = false;
    long limit = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = true; break;
        case 'n':
            if (!cli_parse_int("replay", "--limit", optarg, 1, 1000000000L, &limit))
                return 2;
            break;
        case 'h':
            printf("usage: spiketalk replay FILE [--json] [--limit N]\n\n"
                   "Lists the messages of a recording, one a line: arrival time, plane (data or\n"
                   "bus), type, stream, turn (epoch), sequence number, the capture sample index\n"
                   "(16 kHz) the data derives from, its hops, the time from its first hop to its\n"
                   "last (latency_us), and what it holds. Then counts by type.\n\n"
                   "Make a recording with `spiketalk run --set pipeline.record=FILE` (every\n"
                   "stage's output) or a `recorder` stage; play one back into a pipeline with a\n"
                   "`replay` stage (file = FILE, pace = yes for the recorded timing).\n\n"
                   "  --json       one JSON object per message instead of the table\n"
                   "  --limit N    only the first N messages\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1) {
        cli_fail("replay", "give one recording (see spiketalk replay --help)");
        return 2;
    }
    int rc;
    st_rec_reader *r = st_rec_open(argv[optind], &rc);
    if (!r)
        return cli_fail_lib("replay", rc, "open");
    st_rec_entry e;
    uint64_t first = 0, counts[ST_MSG_TYPE_MAX + 1] = {0}, n = 0;
    if (!json)
        printf("%6s %10s %-4s %-8s %6s %5s %7s %12s %4s %10s  %s\n", "#", "t_ms", "bus", "type",
               "stream", "epoch", "seq", "sample_index", "hops", "latency_us", "content");
    while ((rc = st_rec_read(r, &e)) == ST_OK) {
        if (!n)
            first = e.t_ns;
        const st_wire_header *h = &e.m.h;
        double lat = h->n_hops ? (double)(h->hops[h->n_hops - 1].sent_ns - h->hops[0].sent_ns) / 1e3 : 0;
        char what[256];
        content(&e.m, what, sizeof what);
        if (json) {
            printf("{\"t_ms\": %.3f, \"plane\": \"%s\", \"type\": \"%s\", \"stream\": %u, "
                   "\"epoch\": %u, \"seq\": %llu, \"sample_index\": %llu, \"hops\": [",
                   (double)(e.t_ns - first) / 1e6, e.from_bus ? "bus" : "data",
                   st_wire_type_name(h->type), h->stream_id, h->epoch,
                   (unsigned long long)h->seq, (unsigned long long)h->sample_index);
            for (int i = 0; i < h->n_hops; i++)
                printf("%s{\"stage\": %u, \"sent_ns\": %llu, \"compute_ns\": %u}", i ? ", " : "",
                       h->hops[i].stage_id, (unsigned long long)h->hops[i].sent_ns,
                       h->hops[i].compute_ns);
            printf("], \"latency_us\": %.1f, \"content\": ", lat);
            json_string(what, strlen(what));
            printf("}\n");
        } else {
            printf("%6llu %10.3f %-4s %-8s %6u %5u %7llu %12llu %4u %10.1f  %s\n",
                   (unsigned long long)n, (double)(e.t_ns - first) / 1e6, e.from_bus ? "bus" : "",
                   st_wire_type_name(h->type), h->stream_id, h->epoch, (unsigned long long)h->seq,
                   (unsigned long long)h->sample_index, h->n_hops, lat, what);
        }
        counts[h->type]++;
        n++;
        if (limit && (long)n >= limit)
            break;
    }
    int status = 0;
    if (rc != ST_OK && rc != ST_ERR_END) {
        cli_fail_lib("replay", rc, "read");
        status = 1;
    }
    st_rec_close(&r);
    if (!json) {
        printf("\n%llu messages:", (unsigned long long)n);
        for (int t = 1; t <= ST_MSG_TYPE_MAX; t++)
            if (counts[t])
                printf(" %llu %s", (unsigned long long)counts[t], st_wire_type_name(t));
        printf("\n");
    }
    return status;
}
