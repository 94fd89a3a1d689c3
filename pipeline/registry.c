/*  pipeline/registry.c - stage types by name: the built-in ones, listed
    here once, and any a program registers (a test, a binding, an example).

    What it may touch: the built-in type tables. Workload: a lookup per stage
    at start; a mutex guards registration, which may come from any thread.
*/
#include "pipeline_impl.h"

#include <pthread.h>
#include <string.h>

static const st_stage_type *const builtins[] = {
    &st__stage_audio_source, &st__stage_audio_sink, &st__stage_resampler,
    &st__stage_passthrough,  &st__stage_recorder,   &st__stage_replay,
    &st__stage_text_source,  &st__stage_rewrite,    &st__stage_text_sink,
    &st__stage_synthesizer,  &st__stage_encoder,
    &st__stage_vad,          &st__stage_recognizer, &st__stage_lm,
};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])
#define MAX_REGISTERED 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const st_stage_type *registered[MAX_REGISTERED];
static size_t n_registered;

const st_stage_type *st_stage_type_at(size_t i)
{
    if (i < N_BUILTINS)
        return builtins[i];
    pthread_mutex_lock(&mu);
    const st_stage_type *t = i - N_BUILTINS < n_registered ? registered[i - N_BUILTINS] : NULL;
    pthread_mutex_unlock(&mu);
    return t;
}

const st_stage_type *st_stage_type_find(const char *name)
{
    if (!name)
        return NULL;
    const st_stage_type *t;
    for (size_t i = 0; (t = st_stage_type_at(i)); i++)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

int st_stage_type_register(const st_stage_type *t)
{
    if (!t || !t->name || !*t->name || !t->create || !t->data || !t->destroy)
        return st_error(ST_ERR_INVALID, "stage type: a name, create, data and destroy are needed");
    if (!strcmp(t->name, "external"))
        return st_error(ST_ERR_INVALID, "stage type: 'external' is reserved");
    pthread_mutex_lock(&mu);
    int rc = ST_OK;
    const st_stage_type *old = NULL;
    for (size_t i = 0; i < N_BUILTINS && !old; i++)
        if (!strcmp(builtins[i]->name, t->name))
            old = builtins[i];
    for (size_t i = 0; i < n_registered && !old; i++)
        if (!strcmp(registered[i]->name, t->name))
            old = registered[i];
    if (old == t)
        rc = ST_OK; /* registering the same table twice is harmless */
    else if (old)
        rc = st_error(ST_ERR_INVALID, "stage type '%s' is already registered", t->name);
    else if (n_registered == MAX_REGISTERED)
        rc = st_error(ST_ERR_NOMEM, "stage type '%s': the registry is full (%d)", t->name,
                      MAX_REGISTERED);
    else
        registered[n_registered++] = t;
    pthread_mutex_unlock(&mu);
    return rc;
}
