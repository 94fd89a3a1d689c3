/*  audio/device_impl.h - private to audio/: what a device backend (PortAudio,
    virtual) shares with the common device code in device.c.

    A backend fills an st_device, provides its ops, and calls
    st__device_process() from its callback for every block: that one function
    is the whole audio path, the same for every backend.
*/
#ifndef ST_DEVICE_IMPL_H
#define ST_DEVICE_IMPL_H

#include "audio.h"

#include <semaphore.h>

typedef struct {
    int (*start)(st_device *d);
    int (*stop)(st_device *d);
    /* Runs one block now; only for virtual devices that are not paced (NULL
       otherwise). Returns ST_OK or an error. */
    int (*step)(st_device *d);
    /* Frees the backend; the stream is already stopped. */
    void (*close)(st_device *d);
} st_device_ops;

struct st_device {
    const st_device_ops *ops;
    void *backend;
    st_device_info info;

    st_ring capture;           /* callback -> application, mono, device rate */
    st_ring playback;          /* application -> callback */
    st_ring stamps;            /* one st_stamp a block */
    float *capture_storage;
    float *playback_storage;
    st_stamp *stamp_storage;
    float *scratch;            /* one mono block, for mix-down and fan-out */
    size_t scratch_frames;

    /* Written by the callback thread only; read by others (relaxed). */
    _Atomic uint64_t frames_captured;
    _Atomic uint64_t frames_played;
    _Atomic uint64_t blocks;
    _Atomic uint64_t silence_frames;
    _Atomic uint64_t underrun_frames;
    _Atomic uint64_t stamps_dropped;
    _Atomic uint64_t time_steps_back;
    _Atomic uint64_t worst_step_back_ns;
    bool priming;              /* callback only: waiting for the prefill */
    bool timed;                /* callback only: next_adc/next_dac are set */
    double next_adc_s;         /* callback only: where the previous block ended */
    double next_dac_s;

    _Atomic int draining;      /* application: play what is queued, even short of prefill */
    _Atomic int input_ended;   /* backend: no more captured frames will come */
    _Atomic int failed;        /* backend: an st_err that stopped the stream */
    _Atomic int running;
    sem_t block_done;          /* posted after every block (lock-free post) */
};

/*  Allocates the device and its rings for `rate` and the largest block it
    will see (max_block_frames: the callback is split into pieces this long).
    The backend sets info and ops afterwards. */
st_device *st__device_alloc(const st_device_params *p, int rate_hz, size_t max_block_frames,
                            int *err);

/*  Frees what st__device_alloc made (the backend's close has run). */
void st__device_free(st_device *d);

/*  The audio path: mixes `in` (in_channels interleaved, or NULL) down to mono
    into the capture ring, fills `out` (out_channels interleaved, or NULL) from
    the playback ring, stamps the block. No allocation, no lock, no I/O. */
void st__device_process(st_device *d, const float *in, int in_channels, float *out,
                        int out_channels, size_t frames, double adc_time_s, double dac_time_s);

#endif
