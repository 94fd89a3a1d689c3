/*  tools/asr_tool.h - what the parts of asr-tool (the recognizer's recipe,
    tools/asr_tool.c) share with each other. Not part of libspiketalk. */
#ifndef ST_ASR_TOOL_H
#define ST_ASR_TOOL_H

/*  Aligns AN4's utterances (the folder an4, with its manifest.tsv) to their
    transcripts with pocketsphinx and writes one line per word to out_path:
    `path word start_s end_s speaker` (tools/asr_align.c). 0, or -1 after
    saying on stderr what was wrong (no pocketsphinx, an unreadable file). */
int asr_align_an4(const char *an4, const char *out_path);

#endif
