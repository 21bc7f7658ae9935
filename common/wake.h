/* wake: per-process doorbells (abstract Unix datagram sockets) that tell another presenced
 * process to look at its mail in the store now. */
#ifndef PRESENCED_WAKE_H
#define PRESENCED_WAKE_H

#include <stdint.h>
#include <sys/types.h>

/* The doorbells of one store: named after the store directory, so two presenced instances on
 * one host never ring each other. */
struct wake_bells {
    uint64_t store_id;
    int fd; /* this process's bell, or -1 */
};

/* Derives store_id from data_dir (device and inode). */
int wake_init(struct wake_bells *bells, const char *data_dir);
/* Binds this process's bell (nonblocking, close-on-exec). Returns the fd to poll, or -1. */
int wake_listen(struct wake_bells *bells, pid_t pid);
/* Rings pid's bell. A full bell already has a ring pending, so that counts as rung. Returns 0,
 * or -1 when pid has no bell (it died). */
int wake_ring(const struct wake_bells *bells, pid_t pid);
/* Empties the bell after a ring: the caller then reads all its mail. */
void wake_drain(const struct wake_bells *bells);
void wake_close(struct wake_bells *bells);

#endif
