/* mail: messages from one process to another, kept in the store until the target takes them. */
#ifndef PRESENCED_SHM_MAIL_H
#define PRESENCED_SHM_MAIL_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define SHM_MAIL_PAYLOAD_MAX 8192

enum shm_mail_type {
    SHM_MAIL_CLOSE_CONN = 1, /* payload: be64 conn id — superseded, close with errno 52 */
    SHM_MAIL_DELIVER = 2,    /* payload: be64 conn id, be16 key length, notification key, JSON */
    SHM_MAIL_PING = 3,       /* payload: anything — answered with SHM_MAIL_PONG (tests, probes) */
    SHM_MAIL_PONG = 4,
    SHM_MAIL_APP_EVENT = 5, /* payload: be64 conn id, PUID, u8 status — to an AppService */
    SHM_MAIL_KICK_CONN = 6, /* payload: be64 conn id — the operator closes it: errno 61, 1001 */
    SHM_MAIL_APP_CLOSE = 7, /* payload: be64 conn id, u8 errno — an AppService connection of an
                               app disabled (41), deleted (40) or re-keyed (42): close 1008 */
    SHM_MAIL_WORKER_DEAD = 8, /* payload: be32 pid — to a cluster node's agent, from the master */
    SHM_MAIL_PUSH = 9,        /* payload: none — Web Push jobs are due: take them (push_job.h) */
    SHM_MAIL_CL_DONE = 10,    /* payload: be64 outbox seq, u8 outcome — from a cluster node's
                                 agent: the engine has the write (shm/outbox.h) */
};

/* Queues a message for the process target_pid in the current batch; ring its doorbell after the
 * batch commits (common/wake.h) so it acts within milliseconds. */
int shm_mail_post(struct shm_store *store, int32_t target_pid, uint8_t type, const void *payload,
                  size_t len);

/* Takes (reads and deletes) every message for pid, oldest first per sender, calling cb on each.
 * Returns how many were taken, or < 0. */
typedef void (*shm_mail_cb)(void *arg, int32_t sender_pid, uint8_t type, const void *payload,
                            size_t len);
int shm_mail_take(struct shm_store *store, int32_t pid, shm_mail_cb cb, void *arg);

/* Mail read without the write lock (shm_mail_read), acted on (shm_mail_each), and deleted
 * later in the batch (shm_mail_forget): a process that took its mail in a write transaction
 * held the node's one write lock while it acted on it (writing to sockets, for a delivery)
 * and until its loop turn ended. The caller owns it, zeroed at first; the buffer is kept
 * from one read to the next (shm_mail_inbox_free at the end). */
struct shm_mail_inbox {
    unsigned char *buf; /* per message: be32 sender, u8 type, be16 length, payload */
    size_t len, cap;
    size_t count;
    uint64_t last_seq; /* the store sequence of the newest message read (0: none yet) */
};

/* Reads every message for pid (oldest first) into inbox, replacing what it held, in a read
 * transaction. Returns how many, or < 0 (inbox then holds none). */
int shm_mail_read(struct shm_store *store, int32_t pid, struct shm_mail_inbox *inbox);
/* Calls cb on each message of inbox, in order. cb may use the store (the read is over). */
void shm_mail_each(const struct shm_mail_inbox *inbox, shm_mail_cb cb, void *arg);
/* Deletes, in the batch, the mail of pid up to the store sequence upto (inbox->last_seq): a
 * message committed after the read has a later sequence (each batch takes its numbers from the
 * store's counter while it holds the write lock), so only what was read goes. */
int shm_mail_forget(struct shm_store *store, int32_t pid, uint64_t upto);
void shm_mail_inbox_free(struct shm_mail_inbox *inbox);

/* The be64 connection id that starts the payloads of CLOSE_CONN, DELIVER, APP_EVENT, KICK_CONN
 * and APP_CLOSE. */
void shm_mail_put_conn_id(unsigned char out[8], uint64_t conn_id);
uint64_t shm_mail_conn_id(const void *payload);

/* Drops the mail of a process that died. */
int shm_mail_drop(struct shm_store *store, int32_t pid);

#endif
