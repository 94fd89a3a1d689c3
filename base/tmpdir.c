/*  base/tmpdir.c - a private scratch folder for a run, and its removal.

    The benchmarks, the recipe tools, the pipeline's ipc endpoints and the
    tests all write files a peer program reads (a WAV for pocketsphinx, a
    Scheme script for festival, a socket) into a folder of their own; this is
    the one way they make it and take it away. Not for the audio path.
    May touch: the folder it makes or is given and what is inside it; links
    inside it are removed, never followed.
*/
#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int st_tmpdir_make(char *dir, size_t cap, const char *prefix)
{
    if (!dir || !cap)
        return st_error(ST_ERR_INVALID, "temporary folder: no buffer for its path");
    if (!prefix || !*prefix || strchr(prefix, '/'))
        return st_error(ST_ERR_INVALID, "temporary folder: the prefix must be a plain name");
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    int len = snprintf(dir, cap, "%s/%s.XXXXXX", tmp, prefix);
    if (len < 0 || (size_t)len >= cap) { /* TMPDIR too long for the caller's buffer */
        tmp = "/tmp";
        len = snprintf(dir, cap, "%s/%s.XXXXXX", tmp, prefix);
    }
    if (len < 0 || (size_t)len >= cap) {
        dir[0] = '\0';
        return st_error(ST_ERR_INVALID, "temporary folder: '%s' is too long a prefix", prefix);
    }
    if (!mkdtemp(dir)) {
        int rc = st_error(ST_ERR_IO, "cannot make a folder under %s: %s (set TMPDIR to a "
                                     "writable folder)", tmp, strerror(errno));
        dir[0] = '\0';
        return rc;
    }
    return ST_OK;
}

/* Removes what is in path (recursing into folders) but the entry named keep
   at the top; true when something was kept. */
static bool empty_tree(const char *path, const char *keep)
{
    bool kept = false;
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (keep && !strcmp(e->d_name, keep)) {
            kept = true;
            continue;
        }
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            continue;
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
            empty_tree(sub, NULL);
            rmdir(sub);
        } else
            unlink(sub);
    }
    closedir(d);
    return kept;
}

void st_tmpdir_remove(const char *dir, const char *keep)
{
    if (!dir || !*dir)
        return;
    if (!empty_tree(dir, keep))
        rmdir(dir);
}
