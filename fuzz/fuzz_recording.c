/*  fuzz/fuzz_recording.c - libFuzzer target for recordings
    (pipeline/stage_recorder.c, docs/PROTOCOL.md section 7), which
    `spiketalk replay` and the replay stage read back: st_rec_open and
    st_rec_read to the end on the input as a file (an in-memory file: the
    API takes a path). Every record read must have decoded as a message
    that satisfies st_wire_decode's contract.

    Seeds: fuzz/corpus/recording (written by fuzz/corpus.c with the
    recorder's layout). Touches: a memfd per input.
*/
#include "fuzz.h"
#include "pipeline/pipeline.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    char path[32];
    int fd = st_fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    int err;
    st_rec_reader *r = st_rec_open(path, &err);
    if (r) {
        st_rec_entry e;
        int rc;
        size_t n = 0;
        while ((rc = st_rec_read(r, &e)) == ST_OK) {
            if (e.m.h.payload_bytes != e.m.payload_bytes || e.m.h.n_hops > ST_WIRE_MAX_HOPS ||
                e.m.h.type < 1 || e.m.h.type > ST_MSG_TYPE_MAX)
                abort();
            volatile unsigned char sink = 0;
            for (size_t i = 0; i < e.m.payload_bytes; i++)
                sink ^= ((const unsigned char *)e.m.payload)[i];
            (void)sink;
            if (++n > size)
                abort(); /* more records than bytes: a loop */
        }
        if (rc != ST_ERR_END && rc != ST_ERR_FORMAT && rc != ST_ERR_IO)
            abort();
        st_rec_close(&r);
    }
    close(fd);
    return 0;
}
