/* Cross-process wake-up: one process posts mail in the store and rings another's doorbell; the
 * other acts on its mail and answers the same way. Measures the round trip between two real
 * processes sharing one LMDB store. */
#include "scratch_store.h"
#include "tap.h"

#include "../tools/mail_ping.h"
#include "../../common/wake.h"
#include "../../shm/mail.h"
#include "../../shm/store.h"

#include <poll.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 300

struct echo {
    struct shm_store *store;
    struct wake_bells *bells;
    int stop;
    int answered;
};

static void echo_mail(void *arg, int32_t sender, uint8_t type, const void *payload, size_t len)
{
    struct echo *e = arg;
    if (type == SHM_MAIL_PING && len == 4 && memcmp(payload, "stop", 4) == 0)
        e->stop = 1;
    else if (type == SHM_MAIL_PING)
        shm_mail_post(e->store, sender, SHM_MAIL_PONG, payload, len);
    e->answered = (int)sender;
}

/* The other process: waits on its doorbell, answers each ping with a pong. */
static int echo_process(const char *dir, int ready_fd)
{
    struct wake_bells bells;
    if (wake_init(&bells, dir) != 0 || wake_listen(&bells, getpid()) < 0)
        return 2;
    struct shm_store *store = scratch_store_open(dir);
    if (store == NULL)
        return 2;
    struct echo e = { store, &bells, 0, 0 };
    if (write(ready_fd, "R", 1) != 1)
        return 2;
    close(ready_fd);
    while (!e.stop) {
        struct pollfd pfd = { bells.fd, POLLIN, 0 };
        if (poll(&pfd, 1, 5000) <= 0)
            return 3; /* no ring within 5 s: the test failed */
        wake_drain(&bells);
        e.answered = 0;
        shm_mail_take(store, getpid(), echo_mail, &e);
        shm_batch_commit(store);
        if (e.answered != 0)
            wake_ring(&bells, e.answered);
    }
    shm_store_close(store);
    wake_close(&bells);
    return 0;
}

int main(void)
{
    struct scratch_dir scratch;
    const char *dir = scratch_dir_make(&scratch, "wake");
    if (dir == NULL)
        return 1;
    struct shm_store *first = scratch_store_open(dir);
    shm_store_close(first);
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t echo = fork();
    if (echo == 0) {
        close(ready[0]);
        _exit(echo_process(dir, ready[1]));
    }
    close(ready[1]);
    char byte;
    ok(read(ready[0], &byte, 1) == 1, "the other process is listening");
    struct wake_bells bells;
    ok(wake_init(&bells, dir) == 0 && wake_listen(&bells, getpid()) >= 0, "our doorbell is bound");
    struct shm_store *store = scratch_store_open(dir);
    ok(store != NULL, "store open in both processes");

    struct mail_pongs seen = { 0, 0 };
    int64_t times[ROUNDS];
    int done = 0;
    for (uint32_t seq = 1; seq <= ROUNDS; seq++) {
        int64_t us = mail_ping_round_trip(store, &bells, echo, seq, &seen);
        if (us < 0)
            break;
        times[done++] = us;
    }
    is_int(done, ROUNDS, "every ping was answered");
    is_int(seen.count, ROUNDS, "each answer arrived exactly once");
    if (done > 0) {
        qsort(times, (size_t)done, sizeof times[0], mail_ping_cmp_i64);
        int64_t p50 = times[done / 2], p99 = times[done * 99 / 100], max = times[done - 1];
        diag("round trip (post, commit, ring, act, answer): p50 %lld us, p99 %lld us, max %lld us",
             (long long)p50, (long long)p99, (long long)max);
        /* Generous on purpose (shared machines): a lost ring would show as a 2 s wait. */
        ok(p50 < 50000, "the median round trip is within milliseconds (%lld us)", (long long)p50);
    }
    shm_mail_post(store, echo, SHM_MAIL_PING, "stop", 4);
    shm_batch_commit(store);
    wake_ring(&bells, echo);
    int status;
    waitpid(echo, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process ended cleanly");
    is_int(wake_ring(&bells, echo), -1, "ringing a process that is gone fails");
    shm_store_close(store);
    wake_close(&bells);
    scratch_dir_remove(&scratch);
    return tap_done();
}
