/* wake_probe: measures how fast a running presenced worker acts on mail from another process.
 * Usage: wake_probe DATA_DIR WORKER_PID ROUNDS — prints one JSON line with the round trips. */
#include "../../common/wake.h"
#include "../../shm/mail.h"
#include "../../shm/store.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pong_seen(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    uint32_t *last = arg;
    (void)sender;
    if (type == SHM_MAIL_PONG && len == sizeof *last)
        memcpy(last, payload, len);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

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
    uint32_t last = 0;
    int done = 0;
    for (uint32_t seq = 1; seq <= (uint32_t)rounds; seq++) {
        int64_t start = now_us();
        shm_mail_post(store, worker, SHM_MAIL_PING, &seq, sizeof seq);
        if (shm_batch_commit(store) != SHM_OK || wake_ring(&bells, worker) != 0)
            break;
        while (last != seq) {
            struct pollfd pfd = { bells.fd, POLLIN, 0 };
            if (poll(&pfd, 1, 2000) <= 0)
                goto out;
            wake_drain(&bells);
            shm_mail_take(store, getpid(), pong_seen, &last);
            shm_batch_commit(store);
        }
        times[done++] = now_us() - start;
    }
out:
    qsort(times, (size_t)done, sizeof *times, cmp_i64);
    printf("{\"rounds\":%d,\"answered\":%d,\"p50_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld}\n",
           rounds, done, done ? (long long)times[done / 2] : -1LL,
           done ? (long long)times[done * 99 / 100] : -1LL,
           done ? (long long)times[done - 1] : -1LL);
    free(times);
    shm_store_close(store);
    wake_close(&bells);
    return done == rounds ? 0 : 1;
}
