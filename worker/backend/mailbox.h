/* mailbox: a worker's mail and doorbell on its node (mailbox.c) — how the processes of one node
 * reach each other: the local backend's way to another worker, and a cluster node's too (its
 * master, its agent, its other workers). */
#ifndef PRESENCED_BACKEND_MAILBOX_H
#define PRESENCED_BACKEND_MAILBOX_H

#include "../worker_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* This worker's doorbell and its mail in the node's store; mail for a connection goes to
 * backend_inbound. */
int mailbox_start(struct worker *w);
void mailbox_stop(struct worker *w);
/* Posts mail in the batch and rings target once the batch is committed. */
int mailbox_post(struct worker *w, pid_t target, uint8_t type, const void *payload, size_t len);
/* Rings target once the batch is committed (mail already posted in it by shm_ functions). */
int mailbox_ring_later(struct worker *w, pid_t target);
void mailbox_after_commit(struct worker *w);

#endif
