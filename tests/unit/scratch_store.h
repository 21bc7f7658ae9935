/* scratch_store: the unit tests' LMDB stores, each in a fresh directory removed at the end. */
#ifndef PRESENCED_SCRATCH_STORE_H
#define PRESENCED_SCRATCH_STORE_H

#include "tap.h"

#include "../../shm/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SCRATCH_MIB (1024LL * 1024)

struct scratch_dir {
    char path[128]; /* "" until scratch_dir_make made it */
};

/* Makes a fresh /tmp/presenced-test-<name>-XXXXXX; returns its path, or NULL. The tests open
 * their stores there or in subdirectories of it (shm_store_open makes a missing one). */
static inline const char *scratch_dir_make(struct scratch_dir *d, const char *name)
{
    int n = snprintf(d->path, sizeof d->path, "/tmp/presenced-test-%s-XXXXXX", name);
    if (n < 0 || (size_t)n >= sizeof d->path || mkdtemp(d->path) == NULL) {
        diag("no scratch directory for %s", name);
        d->path[0] = '\0';
        return NULL;
    }
    return d->path;
}

/* Removes the directory and every store in it; the stores must be closed. */
static inline void scratch_dir_remove(struct scratch_dir *d)
{
    if (d->path[0] == '\0')
        return;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d->path);
    if (system(cmd) != 0)
        diag("could not remove %s", d->path);
    d->path[0] = '\0';
}

/* Opens (making it if needed) the store in dir with a map of map_size that may grow to
 * max_map_size, not flushed at each commit (as the server runs it); NULL, said with diag, if it
 * does not open. The flush keeps the reason of a forked child, which leaves with _exit. */
static inline struct shm_store *scratch_store_open_sized(const char *dir, int64_t map_size,
                                                         int64_t max_map_size)
{
    struct shm_store *store = NULL;
    char err[512];
    struct shm_store_options opt = { dir, map_size, max_map_size, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        diag("open failed in %s: %s", dir, err);
        fflush(stdout);
    }
    return store;
}

/* The store most tests need: 8 MiB, not growing. */
static inline struct shm_store *scratch_store_open(const char *dir)
{
    return scratch_store_open_sized(dir, 8 * SCRATCH_MIB, 8 * SCRATCH_MIB);
}

/* A fresh directory (see scratch_dir_make) with that store in it: NULL if either fails. */
static inline struct shm_store *scratch_store_make(struct scratch_dir *d, const char *name)
{
    const char *dir = scratch_dir_make(d, name);
    return dir != NULL ? scratch_store_open(dir) : NULL;
}

#endif
