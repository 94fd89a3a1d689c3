/*  pipeline/params.c - a configuration section's keys and values, with the
    file and line each came from, typed reads with range checks, and the
    "used" marks that turn a misspelt key into an error instead of a silent
    default.

    What it may touch: base/ only. Workload: a few dozen keys read once when a
    stage starts; linear search is the right tool.
*/
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void st_params_init(st_params *p, const char *origin, const char *section, int line)
{
    memset(p, 0, sizeof *p);
    snprintf(p->origin, sizeof p->origin, "%s", origin ? origin : "");
    snprintf(p->section, sizeof p->section, "%s", section ? section : "");
    p->line = line;
}

/* "FILE:LINE: [section] " or "[section] " when there is no file. */
static void where(const st_params *p, int line, char *buf, size_t cap)
{
    if (line < 0)
        snprintf(buf, cap, "--set [%s] ", p->section);
    else if (p->origin[0] && line > 0)
        snprintf(buf, cap, "%s:%d: [%s] ", p->origin, line, p->section);
    else if (p->origin[0])
        snprintf(buf, cap, "%s: [%s] ", p->origin, p->section);
    else
        snprintf(buf, cap, "[%s] ", p->section);
}

int st_params_set(st_params *p, const char *key, const char *value, int line)
{
    char at[400];
    where(p, line, at, sizeof at);
    if (strlen(key) >= ST_PARAM_KEY_MAX)
        return st_error(ST_ERR_INVALID, "%skey '%.60s...' is too long (at most %d bytes)", at, key,
                        ST_PARAM_KEY_MAX - 1);
    if (strlen(value) >= ST_PARAM_VALUE_MAX)
        return st_error(ST_ERR_INVALID, "%s%s: the value is too long (at most %d bytes)", at, key,
                        ST_PARAM_VALUE_MAX - 1);
    /* What st_pipe_config_write() writes must read back as the same key:
       no empty key (its line would continue the previous value), nothing
       INI splits or strips at (found by fuzz/fuzz_config.c). */
    if (!key[0] || strpbrk(key, "=:;#[]\t\r\n") || key[0] == ' ' || key[strlen(key) - 1] == ' ')
        return st_error(ST_ERR_INVALID, "%skey '%s': empty, or holds '=', ':', ';', '#', '[', "
                        "']', a line break or surrounding spaces", at, key);
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->p[i].key, key)) {
            snprintf(p->p[i].value, sizeof p->p[i].value, "%s", value);
            p->p[i].line = line;
            return ST_OK;
        }
    if (p->n == ST_PARAMS_MAX)
        return st_error(ST_ERR_INVALID, "%stoo many keys (at most %d)", at, ST_PARAMS_MAX);
    st_param *q = &p->p[p->n++];
    snprintf(q->key, sizeof q->key, "%s", key);
    snprintf(q->value, sizeof q->value, "%s", value);
    q->line = line;
    q->used = false;
    return ST_OK;
}

static st_param *find(st_params *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->p[i].key, key)) {
            p->p[i].used = true;
            return &p->p[i];
        }
    return NULL;
}

const char *st_params_get(st_params *p, const char *key)
{
    st_param *q = find(p, key);
    return q ? q->value : NULL;
}

const st_param *st_params_unused(const st_params *p)
{
    for (int i = 0; i < p->n; i++)
        if (!p->p[i].used)
            return &p->p[i];
    return NULL;
}

int st_params_double(st_params *p, const char *key, double def, double lo, double hi, double *out)
{
    st_param *q = find(p, key);
    if (!q) {
        *out = def;
        return ST_OK;
    }
    char at[400];
    where(p, q->line, at, sizeof at);
    char *end;
    errno = 0;
    double v = strtod(q->value, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || end == q->value || *end || !isfinite(v))
        return st_error(ST_ERR_INVALID, "%s%s: '%s' is not a number", at, key, q->value);
    if (v < lo || v > hi)
        return st_error(ST_ERR_INVALID, "%s%s: %g is out of range (%g to %g)", at, key, v, lo, hi);
    *out = v;
    return ST_OK;
}

int st_params_int(st_params *p, const char *key, long def, long lo, long hi, long *out)
{
    st_param *q = find(p, key);
    if (!q) {
        *out = def;
        return ST_OK;
    }
    char at[400];
    where(p, q->line, at, sizeof at);
    char *end;
    errno = 0;
    long v = strtol(q->value, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || end == q->value || *end)
        return st_error(ST_ERR_INVALID, "%s%s: '%s' is not a whole number", at, key, q->value);
    if (v < lo || v > hi)
        return st_error(ST_ERR_INVALID, "%s%s: %ld is out of range (%ld to %ld)", at, key, v, lo,
                        hi);
    *out = v;
    return ST_OK;
}

int st_params_bool(st_params *p, const char *key, bool def, bool *out)
{
    st_param *q = find(p, key);
    if (!q) {
        *out = def;
        return ST_OK;
    }
    static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(q->value, yes[i])) {
            *out = true;
            return ST_OK;
        }
        if (!strcasecmp(q->value, no[i])) {
            *out = false;
            return ST_OK;
        }
    }
    char at[400];
    where(p, q->line, at, sizeof at);
    return st_error(ST_ERR_INVALID, "%s%s: '%s' is not yes or no", at, key, q->value);
}

int st_params_choice(st_params *p, const char *key, const char *def, const char *const *choices,
                     int *out)
{
    st_param *q = find(p, key);
    const char *v = q ? q->value : def;
    for (int i = 0; choices[i]; i++)
        if (!strcasecmp(v, choices[i])) {
            *out = i;
            return ST_OK;
        }
    char at[400], list[256] = "";
    where(p, q ? q->line : 0, at, sizeof at);
    size_t len = 0;
    for (int i = 0; choices[i] && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", choices[i]);
    return st_error(ST_ERR_INVALID, "%s%s: '%s' is not one of: %s", at, key, v, list);
}
