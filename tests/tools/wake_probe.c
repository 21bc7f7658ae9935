/* wake_probe: measures how fast a running presenced worker acts on mail from another process.
 * Usage: wake_probe DATA_DIR WORKER_PID ROUNDS — prints one JSON line with the round trips. */
#include "mail_ping.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: wake_probe DATA_DIR WORKER_PID ROUNDS\n");
        return 2;
    }
    const char *dir = argv[1];
    pid_t worker = (pid_t)atoi(argv[2]);
    int rounds = atoi(argv[3]);
    if (rounds < 1 || rounds > 100000)
        return 2;
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = { dir, 256LL << 20, 16LL << 30, false };
    struct wake_bells bells;
    if (shm_store_open(&store, &opt, err, sizeof err) != 0 || wake_init(&bells, dir) != 0 ||
        wake_listen(&bells, getpid()) < 0) {
        fprintf(stderr, "wake_probe: cannot open the store or a doorbell: %s\n", err);
        return 1;
    }
    int64_t *times = calloc((size_t)rounds, sizeof *times);
    if (times == NULL) {
        fprintf(stderr, "wake_probe: out of memory\n");
        return 1;
    }
    struct mail_pongs pongs = { 0, 0 };
    int done = 0;
    for (uint32_t seq = 1; seq <= (uint32_t)rounds; seq++) {
        int64_t us = mail_ping_round_trip(store, &bells, worker, seq, &pongs);
        if (us < 0)
            break;
        times[done++] = us;
    }
    qsort(times, (size_t)done, sizeof *times, mail_ping_cmp_i64);
    printf("{\"rounds\":%d,\"answered\":%d,\"p50_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld}\n",
           rounds, done, done ? (long long)times[done / 2] : -1LL,
           done ? (long long)times[done * 99 / 100] : -1LL,
           done ? (long long)times[done - 1] : -1LL);
    free(times);
    shm_store_close(store);
    wake_close(&bells);
    return done == rounds ? 0 : 1;
}
