/* record: the user record of a cluster — every device of one user on every node, in one engine
 * key changed only by compare-and-set — its codec and its pure operations (cluster/README.md). */
#ifndef PRESENCED_CLUSTER_RECORD_H
#define PRESENCED_CLUSTER_RECORD_H

#include "../common/config.h"
#include "../shm/conn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_RECORD_VERSION 1
/* Entries one record may hold: a cluster's max_devices_per_user is at most this (config.c), and
 * a full record (about 140 bytes an entry) stays far below the engine's 1 MiB message. */
#define CL_RECORD_MAX_ENTRIES CONFIG_CLUSTER_DEVICES_MAX
/* The largest encoding of a record (CL_RECORD_MAX_ENTRIES entries of the longest names). */
#define CL_RECORD_ENTRY_MAX (1 + SHM_DEVICE_MAX + 1 + CONFIG_NODE_NAME_MAX + 8 + 4 + 8 + 1 + 8 + 8)
#define CL_RECORD_MAX (1 + 1 + SHM_EMAIL_MAX + 2 + CL_RECORD_MAX_ENTRIES * CL_RECORD_ENTRY_MAX + 1 + 8)

/* A connection's identity cluster-wide: the node, its incarnation (epoch), the worker, the
 * worker's connection id. */
struct cl_owner {
    char node[CONFIG_NODE_NAME_MAX + 1];
    uint64_t epoch;
    uint32_t pid;
    uint64_t conn;
};

/* One connected device of the user. */
struct cl_entry {
    char device[SHM_DEVICE_MAX + 1];
    struct cl_owner owner;
    uint8_t status; /* enum shm_status */
    int64_t since_ms;
    int64_t claimed_ms;
};

struct cl_record {
    char email[SHM_EMAIL_MAX + 1];
    struct cl_entry *entries;
    size_t count, cap;
    /* The aggregate over all entries as the last writer saw them: a hint, for readers that do
     * not know liveness. Readers compute cl_record_effective. */
    uint8_t agg_status;
    int64_t agg_since_ms;
};

enum cl_record_result {
    CL_REC_OK = 0,
    CL_REC_UNCHANGED = 1, /* nothing to write */
    CL_REC_NOT_OWNER = 2, /* the connection no longer owns the device (superseded: 52) */
    CL_REC_TOO_MANY = 3,  /* max_devices_per_user live devices already (51) */
    CL_REC_NOMEM = -1,
};

/* Whether the incarnation (node, epoch) and its worker pid are alive, as the caller knows. */
typedef bool (*cl_live_fn)(void *arg, const struct cl_owner *owner);

void cl_record_init(struct cl_record *rec, const char *email);
void cl_record_free(struct cl_record *rec);

/* Writes rec into out (cap bytes, CL_RECORD_MAX always suffices); returns the length or -1. */
long cl_record_encode(const struct cl_record *rec, unsigned char *out, size_t cap);
/* Reads a record written by cl_record_encode into rec (initialised by the call; free it with
 * cl_record_free either way). Anything else — truncated, trailing bytes, a status out of range,
 * an empty or overlong name, one device twice — is refused: -1, *why says what. */
int cl_record_decode(struct cl_record *rec, const void *data, size_t len, const char **why);

/* Makes me the holder of me->device (newest wins). Entries of incarnations that are not live go
 * first (no reader counts them, and a write is being made anyway). When a live connection held
 * the device, *previous gets it and *had_previous is set: the caller closes it (52, 4001).
 * CL_REC_TOO_MANY when the device is new and max_devices live devices are there already. */
int cl_record_claim(struct cl_record *rec, const struct cl_entry *me, size_t max_devices,
                    cl_live_fn live, void *live_arg, struct cl_entry *previous, bool *had_previous);

/* Changes the status of device while owner still holds it. */
int cl_record_set_status(struct cl_record *rec, const char *device, const struct cl_owner *owner,
                         uint8_t status, int64_t now_ms);

/* Removes device while owner still holds it (a superseded connection removes nothing). An
 * empty record afterwards means the user has no device left: the caller deletes the key. */
int cl_record_release(struct cl_record *rec, const char *device, const struct cl_owner *owner,
                      int64_t now_ms);

/* Removes every entry of the incarnation (node, epoch) — of its worker pid only when pid is not
 * 0. Returns how many went. */
size_t cl_record_release_incarnation(struct cl_record *rec, const char *node, uint64_t epoch,
                                     uint32_t pid, int64_t now_ms);

/* The user's presence as every reader computes it: the highest status over the entries whose
 * incarnation is live (offline with none). *since (may be NULL) gets when that began: the
 * record's agg_since when the written aggregate is the same, else the latest since of the live
 * entries holding that status, else 0 (the caller knows when the rest went away). *live_count
 * (may be NULL) gets the number of live entries. */
uint8_t cl_record_effective(const struct cl_record *rec, cl_live_fn live, void *live_arg,
                            int64_t *since, size_t *live_count);

/* The entry of device, or NULL. */
const struct cl_entry *cl_record_find(const struct cl_record *rec, const char *device);

bool cl_owner_same(const struct cl_owner *a, const struct cl_owner *b);

/* The engine key of a user: 32 lowercase hex characters, the first 16 bytes of SHA-256 of the
 * e-mail (keys allow only a few characters, and a hash spreads users over the shards). */
#define CL_USER_KEY_LEN 32
void cl_user_key(const char *email, char out[CL_USER_KEY_LEN + 1]);
/* The shard (user bucket) of a user key: its first byte modulo shards. */
unsigned cl_user_shard(const char *user_key, unsigned shards);

#endif
