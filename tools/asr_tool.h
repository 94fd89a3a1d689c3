/*  tools/asr_tool.h - what the parts of asr-tool (the recognizer's recipe,
    tools/asr_tool.c) share with each other. Not part of libspiketalk. */
#ifndef ST_ASR_TOOL_H
#define ST_ASR_TOOL_H

#include <stddef.h>

/*  Aligns AN4's utterances (the folder an4, with its manifest.tsv) to their
    transcripts with pocketsphinx and writes one line per word to out_path:
    `path word start_s end_s speaker` (tools/asr_align.c). 0, or -1 after
    saying on stderr what was wrong (no pocketsphinx, an unreadable file). */
int asr_align_an4(const char *an4, const char *out_path);

/*  Speaks words[0..n) with festival's voice `voice` (its function's name
    without "voice_": kal_diphone, ked_diphone, cmu_us_slt_arctic_hts) at
    Duration_Stretch `stretch` (1: as the voice speaks), and hands each word
    to cb as 16 kHz samples cut at festival's segment times, 50 ms before
    and 100 ms after (tools/asr_festival.c), with its index in words. The
    number of words made, or -1 after saying on stderr what was wrong (no
    festival, an unknown voice: the log's path is named). */
typedef void (*asr_festival_cb)(const float *x, size_t n, size_t index, void *user);
int asr_festival_words(const char *voice, double stretch, const char *const *words, size_t n,
                       asr_festival_cb cb, void *user);

#endif
