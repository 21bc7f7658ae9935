/* outbox: a cluster node's writes of shared records (apps, grants, web sessions) that its agent
 * has still to make in the engine, and the records it is asked to fetch from there (a miss of
 * this node's replica). Written in the writer's batch with the local views they change, so that
 * a write is either in both or in neither; taken by the agent (cluster/agent_shared.c), which
 * answers the writer with SHM_MAIL_CL_DONE once the engine has it. */
#ifndef PRESENCED_SHM_OUTBOX_H
#define PRESENCED_SHM_OUTBOX_H

#include "app.h"
#include "grant.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_OUTBOX_BUCKET_MAX 15
#define SHM_OUTBOX_KEY_MAX 96
/* The largest value: an operator's notification (u8 length + e-mail, be64 expiry, its JSON). */
#define SHM_OUTBOX_VALUE_MAX (1 + 254 + 8 + 4096)

enum shm_outbox_op {
    SHM_OUTBOX_PUT = 1,    /* bucket.key = value */
    SHM_OUTBOX_DELETE = 2, /* bucket.key deleted */
    SHM_OUTBOX_GRANT = 3,  /* value: a grant (shm_outbox_grant_encode), made once per user+app */
    SHM_OUTBOX_REVOKE = 4, /* value: the grant revoked */
    SHM_OUTBOX_FETCH = 5,  /* bucket.key read from the engine into the views, if it is there */
    SHM_OUTBOX_NOTIFY = 6, /* value: an operator's notification for the user's queue (PD_Q) */
    SHM_OUTBOX_KICK = 7,   /* value: an e-mail whose devices, on every node, close (61, 1001) */
};

/* What the agent answers (the SHM_MAIL_CL_DONE payload: be64 seq, u8 outcome). */
enum shm_outbox_outcome {
    SHM_OUTBOX_DONE = 0,     /* in the engine (a fetch: in the views now, or not in the engine) */
    SHM_OUTBOX_CONFLICT = 1, /* another node's write came first (a grant: its PUID holds) */
    SHM_OUTBOX_FAILED = 2,   /* the engine refused it or could not be reached in time */
};

struct shm_outbox_entry {
    uint64_t seq;      /* the store sequence: unique, in the order written */
    int32_t reply_pid; /* who hears the outcome; 0: nobody */
    uint8_t op;        /* enum shm_outbox_op */
    char bucket[SHM_OUTBOX_BUCKET_MAX + 1];
    char key[SHM_OUTBOX_KEY_MAX + 1];
    const void *value; /* valid during the callback only */
    size_t len;
};

/* Adds an entry in the batch; *seq (may be NULL) gets its number. The store remembers the
 * entries added since the last shm_outbox_take_new, for the writer to wait for. */
int shm_outbox_add(struct shm_store *store, uint8_t op, const char *bucket, const char *key,
                   const void *value, size_t len, uint64_t *seq);
/* Whether this store's writes of shared records go to the outbox (a cluster node's workers and
 * master), and who hears the outcome (0: nobody). The agent's store does not: it applies. */
void shm_outbox_enable(struct shm_store *store, int32_t reply_pid);
bool shm_outbox_enabled(const struct shm_store *store);

/* The entries this process added since the last call: their count, the first and last seq. */
size_t shm_outbox_take_new(struct shm_store *store, uint64_t *first, uint64_t *last);

/* Calls cb with up to max entries, oldest first. Returns how many, or < 0. */
typedef void (*shm_outbox_cb)(void *arg, const struct shm_outbox_entry *entry);
int shm_outbox_walk(struct shm_store *store, size_t max, shm_outbox_cb cb, void *arg);
/* Removes the entry (in the batch). */
int shm_outbox_remove(struct shm_store *store, uint64_t seq);
/* Whether an entry other than a fetch names bucket.key: a local write the engine does not have
 * yet, which an older change coming from the engine must not undo. */
bool shm_outbox_pending(struct shm_store *store, const char *bucket, const char *key);

/* A grant as the outbox carries it: the PUID, when it was granted, the user and the app. */
struct shm_outbox_grant {
    char puid[SHM_PUID_LEN + 1];
    int64_t granted_ms;
    char email[SHM_EMAIL_MAX + 1];
    char appid[SHM_APPID_LEN + 1];
};
/* An operator's notification as the outbox carries it. */
long shm_outbox_notify_encode(const char *email, int64_t expires_ms, const char *json, size_t len,
                              unsigned char *out, size_t cap);
int shm_outbox_notify_decode(const void *data, size_t len, char *email, int64_t *expires_ms,
                             const char **json, size_t *json_len);

long shm_outbox_grant_encode(const struct shm_outbox_grant *g, unsigned char *out, size_t cap);
int shm_outbox_grant_decode(const void *data, size_t len, struct shm_outbox_grant *out);

#endif
