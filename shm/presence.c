/* presence: each user's presence as apps see it — the highest status of their devices, a
 * departed device's status held for offline_grace, since when each status holds, and "last seen"
 * for users who went offline (SPEC.md §7). See presence.h for the design. */
#include "presence.h"

#include "conn.h"
#include "device_key.h"
#include "store_internal.h"

#include "../common/grow.h"

#include <stdlib.h>
#include <string.h>

/* presence: be64 expiry (wall ms; never while devices are connected or held), u8 published
 * status, be64 since, u8 live status, be64 live since, then u8 flags (HELD) and be16 counts of
 * the connected devices at offline, unavailable and online (both left out when not counted:
 * RECORD_SIZE_V1, the layout before them). */
#define RECORD_SIZE_V1 (8 + 1 + 8 + 1 + 8)
#define RECORD_SIZE (RECORD_SIZE_V1 + 1 + 3 * 2)
#define RECORD_COUNTS (RECORD_SIZE_V1 + 1)
#define HELD 0x01 /* the user had holds when the record was written */
/* The record of presenced before offline_grace (a volatile one): u8 status, be64 since. */
#define RECORD_SIZE_V0 (1 + 8)
#define NEVER ((uint64_t)INT64_MAX) /* the sweep reads expiries as signed */
/* presence_grace: e-mail \0 device -> be64 due, u8 status, be64 left (wall ms). */
#define GRACE_SIZE (8 + 1 + 8)
#define DEVICE_KEY_MAX (SHM_EMAIL_MAX + 1 + SHM_DEVICE_MAX)
/* presence_due: be64 due, e-mail \0 device -> "". */
#define DUE_KEY_MAX (8 + DEVICE_KEY_MAX)

static uint8_t status_max(uint8_t a, uint8_t b)
{
    return a > b ? a : b;
}

static int email_key(const char *email, MDB_val *key)
{
    key->mv_size = strlen(email);
    key->mv_data = (void *)email;
    return key->mv_size == 0 || key->mv_size > SHM_EMAIL_MAX ? SHM_ERROR : SHM_OK;
}

static int record_decode(const MDB_val *value, struct shm_presence *out)
{
    const unsigned char *v = value->mv_data;
    if (value->mv_size == RECORD_SIZE_V0) {
        /* Left by an older presenced: the status it told apps, which must hear what follows. */
        out->status = out->live = v[0];
        out->since_ms = out->live_since_ms = (int64_t)store_get_be64(v + 1);
        return SHM_OK;
    }
    if (value->mv_size != RECORD_SIZE && value->mv_size != RECORD_SIZE_V1)
        return SHM_NOT_FOUND;
    out->status = v[8];
    out->since_ms = (int64_t)store_get_be64(v + 9);
    out->live = v[17];
    out->live_since_ms = (int64_t)store_get_be64(v + 18);
    /* Without counts (the previous layout, or a cluster agent's record): not counted. */
    out->counted = value->mv_size == RECORD_SIZE;
    out->held = out->counted && (v[RECORD_SIZE_V1] & HELD) != 0;
    for (int i = 0; out->counted && i < 3; i++) {
        const unsigned char *at = v + RECORD_COUNTS + 2 * i;
        out->at_status[i] = (uint16_t)(at[0] << 8 | at[1]);
    }
    return SHM_OK;
}

/* A record as it was read, so that an unchanged one is not written again (nor read again). */
struct record_raw {
    bool found;
    size_t len; /* of bytes: 0 when there was none or it was longer */
    unsigned char bytes[RECORD_SIZE];
};

/* The record of email: SHM_OK, or SHM_NOT_FOUND with offline and nothing known in *out. */
static int record_read(struct shm_store *store, MDB_txn *txn, MDB_val *key,
                       struct shm_presence *out)
{
    MDB_val value;
    memset(out, 0, sizeof *out);
    int rc = mdb_get(txn, store->presence, key, &value);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_result(rc);
    return record_decode(&value, out);
}

/* The same in the batch, through its presence cursor, which stays on the record for
 * record_write (no second search); raw gets the record's bytes. */
static int record_read_batch(struct shm_store *store, MDB_val *key, struct shm_presence *out,
                             struct record_raw *raw)
{
    MDB_cursor *cursor = store_batch_cursor(store, store->presence);
    MDB_val at = *key, value;
    memset(out, 0, sizeof *out);
    raw->found = false;
    raw->len = 0;
    if (cursor == NULL)
        return SHM_ERROR;
    int rc = mdb_cursor_get(cursor, &at, &value, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return SHM_NOT_FOUND;
    if (rc != 0)
        return store_batch_fail(store, rc, "presence");
    raw->found = true;
    if (value.mv_size <= sizeof raw->bytes) {
        raw->len = value.mv_size;
        memcpy(raw->bytes, value.mv_data, value.mv_size);
    }
    return record_decode(&value, out);
}

int shm_presence_count_live(struct shm_store *store, uint64_t users[3])
{
    users[0] = users[1] = users[2] = 0;
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_cursor_open(txn, store->presence, &cursor);
    if (rc != 0) {
        store_read_end(store, txn);
        return store_result(rc);
    }
    MDB_val key, value;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        struct shm_presence p = { 0 };
        /* live_since is 0 while no device is connected (held, or only "last seen"). */
        if (record_decode(&value, &p) == SHM_OK && p.live_since_ms > 0)
            users[p.live < 3 ? p.live : 0]++;
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return rc == MDB_NOTFOUND ? SHM_OK : store_result(rc);
}

/* Encodes p into out (RECORD_SIZE bytes of room); returns the record's length. */
static size_t record_encode(const struct shm_presence *p, uint64_t expiry, unsigned char *out)
{
    store_put_be64(out, expiry);
    out[8] = p->status;
    store_put_be64(out + 9, (uint64_t)p->since_ms);
    out[17] = p->live;
    store_put_be64(out + 18, (uint64_t)p->live_since_ms);
    if (!p->counted)
        return RECORD_SIZE_V1;
    out[RECORD_SIZE_V1] = p->held ? HELD : 0;
    for (int i = 0; i < 3; i++) {
        out[RECORD_COUNTS + 2 * i] = (unsigned char)(p->at_status[i] >> 8);
        out[RECORD_COUNTS + 2 * i + 1] = (unsigned char)p->at_status[i];
    }
    return RECORD_SIZE;
}

/* When the record may go: never while a device is connected or held; an offline user's "since"
 * is kept last_seen_ttl (0: not at all, nor a since no one knows). */
static bool record_expiry(const struct shm_presence *p, const struct shm_presence_policy *policy,
                          uint64_t *expiry)
{
    if (p->devices > 0 || p->held || p->status != SHM_STATUS_OFFLINE) {
        *expiry = NEVER;
        return true;
    }
    if (policy->last_seen_ttl_ms <= 0 || p->since_ms <= 0)
        return false;
    *expiry = (uint64_t)p->since_ms + (uint64_t)policy->last_seen_ttl_ms;
    return true;
}

/* Whether the batch's presence cursor still stands on key (record_read_batch put it there). */
static bool cursor_on(MDB_cursor *cursor, const MDB_val *key)
{
    MDB_val at, value;
    return cursor != NULL && mdb_cursor_get(cursor, &at, &value, MDB_GET_CURRENT) == 0 &&
           at.mv_size == key->mv_size && memcmp(at.mv_data, key->mv_data, key->mv_size) == 0;
}

/* Writes the record read as old by record_read_batch: in place when there was one. */
static int record_write(struct shm_store *store, MDB_txn *txn, MDB_val *key,
                        const struct shm_presence *p, const struct shm_presence_policy *policy,
                        const struct record_raw *old)
{
    uint64_t expiry;
    int rc;
    MDB_cursor *cursor = old->found ? store->cursors[store->presence] : NULL;
    bool in_place = old->found && cursor_on(cursor, key);
    if (!record_expiry(p, policy, &expiry)) {
        if (!old->found)
            return SHM_OK;
        rc = in_place ? mdb_cursor_del(cursor, 0) : mdb_del(txn, store->presence, key, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    } else {
        unsigned char buf[RECORD_SIZE];
        MDB_val value = { 0, buf };
        value.mv_size = record_encode(p, expiry, buf);
        /* An unchanged record is not written again: a repeated status costs no page. */
        if (old->len == value.mv_size && memcmp(old->bytes, buf, value.mv_size) == 0)
            return SHM_OK;
        rc = in_place ? mdb_cursor_put(cursor, key, &value, MDB_CURRENT)
                      : mdb_put(txn, store->presence, key, &value, 0);
    }
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "presence");
}

static void due_key(uint64_t due, const MDB_val *device, unsigned char *buf, MDB_val *key)
{
    store_put_be64(buf, due);
    memcpy(buf + 8, device->mv_data, device->mv_size);
    key->mv_size = 8 + device->mv_size;
    key->mv_data = buf;
}

/* Deletes the hold of a device (key "email\0device") and its place in the time index. */
static int hold_drop(struct shm_store *store, MDB_txn *txn, MDB_val *device)
{
    MDB_val value;
    int rc = mdb_get(txn, store->presence_grace, device, &value);
    if (rc == MDB_NOTFOUND)
        return SHM_OK;
    if (rc != 0)
        return store_batch_fail(store, rc, "presence hold");
    unsigned char buf[DUE_KEY_MAX];
    MDB_val index;
    due_key(value.mv_size == GRACE_SIZE ? store_get_be64(value.mv_data) : 0, device, buf, &index);
    if ((rc = mdb_del(txn, store->presence_grace, device, NULL)) != 0 ||
        ((rc = mdb_del(txn, store->presence_due, &index, NULL)) != 0 && rc != MDB_NOTFOUND))
        return store_batch_fail(store, rc, "presence hold");
    return SHM_OK;
}

/* Holds a departed device's status until due. */
static int hold_put(struct shm_store *store, MDB_txn *txn, const char *email, const char *device,
                    uint8_t status, int64_t due_ms, int64_t left_ms)
{
    unsigned char key_buf[DEVICE_KEY_MAX], index_buf[DUE_KEY_MAX], value_buf[GRACE_SIZE];
    MDB_val key, index, value = { sizeof value_buf, value_buf }, empty = { 0, "" };
    if (shm_device_key(email, device, key_buf, &key) != SHM_OK)
        return SHM_ERROR;
    int rc = hold_drop(store, txn, &key);
    if (rc != SHM_OK)
        return rc;
    store_put_be64(value_buf, (uint64_t)due_ms);
    value_buf[8] = status;
    store_put_be64(value_buf + 9, (uint64_t)left_ms);
    due_key((uint64_t)due_ms, &key, index_buf, &index);
    if ((rc = mdb_put(txn, store->presence_grace, &key, &value, 0)) != 0 ||
        (rc = mdb_put(txn, store->presence_due, &index, &empty, 0)) != 0)
        return store_batch_fail(store, rc, "presence hold");
    return SHM_OK;
}

/* What the holds of a user say now: the highest status still held, and of those whose time is
 * up (deleted here) the highest status and the latest departure. */
struct holds {
    uint8_t held;
    int count;
    uint8_t ended;
    int64_t ended_left_ms;
};

static int holds_fold(struct shm_store *store, MDB_txn *txn, MDB_val *email, int64_t now_ms,
                      struct holds *out)
{
    MDB_stat stat;
    if (mdb_stat(txn, store->presence_grace, &stat) == 0 && stat.ms_entries == 0) {
        /* No hold anywhere (the usual case): nothing to look for. */
        memset(out, 0, sizeof *out);
        return SHM_OK;
    }
    unsigned char prefix[SHM_EMAIL_MAX + 1];
    memcpy(prefix, email->mv_data, email->mv_size);
    prefix[email->mv_size] = '\0';
    size_t prefix_len = email->mv_size + 1;
    memset(out, 0, sizeof *out);
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->presence_grace, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "presence holds");
    MDB_val key = { prefix_len, prefix }, value;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key.mv_size >= prefix_len && memcmp(key.mv_data, prefix, prefix_len) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        const unsigned char *v = value.mv_data;
        int64_t due = value.mv_size == GRACE_SIZE ? (int64_t)store_get_be64(v) : 0;
        if (due > now_ms) {
            out->held = status_max(out->held, v[8]);
            out->count++;
            continue;
        }
        if (value.mv_size == GRACE_SIZE) {
            out->ended = status_max(out->ended, v[8]);
            int64_t left = (int64_t)store_get_be64(v + 9);
            out->ended_left_ms = left > out->ended_left_ms ? left : out->ended_left_ms;
        }
        unsigned char index_buf[DUE_KEY_MAX];
        MDB_val index;
        due_key((uint64_t)due, &key, index_buf, &index);
        int drc = mdb_del(txn, store->presence_due, &index, NULL);
        if ((drc != 0 && drc != MDB_NOTFOUND) || (rc = mdb_cursor_del(cursor, 0)) != 0) {
            rc = drc != 0 && drc != MDB_NOTFOUND ? drc : rc;
            break;
        }
    }
    mdb_cursor_close(cursor);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, "presence holds");
}

/* Folds one connected device into *arg (zeroed, counted set, before the walk). */
static void devices_fold(void *arg, const char *device, const struct shm_conn_owner *owner)
{
    struct shm_presence *p = arg;
    (void)device;
    p->live = status_max(p->live, owner->status);
    p->devices++;
    if (owner->status > SHM_STATUS_ONLINE || p->at_status[owner->status] == UINT16_MAX)
        p->counted = false; /* not a status this presenced counts, or too many: walk each time */
    else
        p->at_status[owner->status]++;
}

/* The connected devices of email, walked and counted, into *now (in the batch). */
static int devices_count(struct shm_store *store, const char *email, struct shm_presence *now)
{
    memset(now, 0, sizeof *now);
    now->counted = true;
    return shm_conn_devices(store, email, devices_fold, now) < 0 ? SHM_ERROR : SHM_OK;
}

/* One device moved from status was to status is, in the counts of old, into *now: false when
 * old's counts cannot say (none, or none at was: then the devices are walked). */
static bool devices_move(const struct shm_presence *old, uint8_t was, uint8_t is,
                         struct shm_presence *now)
{
    if (!old->counted || was > SHM_STATUS_ONLINE || is > SHM_STATUS_ONLINE ||
        old->at_status[was] == 0)
        return false;
    memset(now, 0, sizeof *now);
    now->counted = true;
    memcpy(now->at_status, old->at_status, sizeof now->at_status);
    now->at_status[was]--;
    now->at_status[is]++;
    for (int status = SHM_STATUS_OFFLINE; status <= SHM_STATUS_ONLINE; status++) {
        now->devices += now->at_status[status];
        if (now->at_status[status] > 0)
            now->live = (uint8_t)status;
    }
    return true;
}

/* The new presence from the old one, the connected devices and the holds. A change of the
 * published status dates from now, except a fall that only the end of a hold made: that one
 * dates from when the device left ("last seen"). */
static void presence_next(const struct shm_presence *old, const struct holds *h, int64_t now_ms,
                          struct shm_presence *now)
{
    now->live_since_ms = now->devices == 0                                          ? 0
                         : now->live != old->live || old->live_since_ms == 0 ? now_ms
                                                                                 : old->live_since_ms;
    now->held = h->count > 0;
    now->status = status_max(now->live, h->held);
    if (now->status == old->status) {
        now->since_ms = old->since_ms;
        return;
    }
    bool hold_ended = now->status < old->status && h->ended_left_ms > 0 &&
                      status_max(now->status, h->ended) >= old->status;
    now->since_ms = hold_ended ? h->ended_left_ms : now_ms;
}

/* A change of one user's presence in the batch: the record's key, the batch's txn, and the
 * record as read (offline and not found when there was none). */
struct change {
    MDB_val key;
    MDB_txn *txn;
    struct shm_presence old;
    struct record_raw raw;
    bool status_only; /* a connected device's status update: no connection came or went */
};

static int change_open(struct shm_store *store, const char *email, struct change *c)
{
    if (email_key(email, &c->key) != SHM_OK)
        return SHM_ERROR;
    if ((c->txn = store_batch_txn(store)) == NULL)
        return SHM_ERROR;
    c->status_only = false;
    int rc = record_read_batch(store, &c->key, &c->old, &c->raw);
    return rc == SHM_NOT_FOUND ? SHM_OK : rc;
}

/* Stores the presence of the user of c from its record as read and what the connected devices
 * say (now: live and devices): the holds are folded in, those whose time is up end, and the
 * record is written when it changed. */
static int presence_store(struct shm_store *store, struct change *c, struct shm_presence *now,
                          const struct shm_presence_policy *policy, int64_t now_ms,
                          struct shm_presence *before, struct shm_presence *after)
{
    struct holds holds = { 0 };
    /* A counted record says whether the user had holds when it was written, and none is added
     * without the user's presence being stored again (a departure, a worker's release), except
     * at a restart, after which a device binds (and looks) before any update: a status update
     * of a user without holds need not look for them in presence_grace. */
    int rc = c->old.counted && !c->old.held && c->status_only
                 ? SHM_OK
                 : holds_fold(store, c->txn, &c->key, now_ms, &holds);
    if (rc != SHM_OK)
        return rc;
    presence_next(&c->old, &holds, now_ms, now);
    if ((rc = record_write(store, c->txn, &c->key, now, policy, &c->raw)) != SHM_OK)
        return rc;
    if (before != NULL)
        *before = c->old;
    if (after != NULL)
        *after = *now;
    return SHM_OK;
}

/* Recomputes and stores the presence of email, in the batch. */
static int recompute(struct shm_store *store, const char *email,
                     const struct shm_presence_policy *policy, int64_t now_ms,
                     struct shm_presence *before, struct shm_presence *after)
{
    struct change c;
    struct shm_presence now;
    int rc = change_open(store, email, &c);
    if (rc != SHM_OK)
        return rc;
    if (devices_count(store, email, &now) != SHM_OK)
        return SHM_ERROR;
    return presence_store(store, &c, &now, policy, now_ms, before, after);
}

int shm_presence_put(struct shm_store *store, const char *email, const struct shm_presence *now,
                     const struct shm_presence_policy *policy, struct shm_presence *before)
{
    struct change c;
    int rc = change_open(store, email, &c);
    if (rc != SHM_OK)
        return rc;
    if (before != NULL)
        *before = c.old;
    return record_write(store, c.txn, &c.key, now, policy, &c.raw);
}

int shm_presence_device_status(struct shm_store *store, const char *email, const char *device,
                               int32_t pid, uint64_t conn_id, uint8_t status,
                               const struct shm_presence_policy *policy, int64_t now_ms,
                               struct shm_presence *before, struct shm_presence *after)
{
    struct change c;
    struct shm_presence now;
    uint8_t was;
    int rc = change_open(store, email, &c);
    if (rc != SHM_OK)
        return rc;
    if ((rc = shm_conn_set_status(store, email, device, pid, conn_id, status, &was)) != SHM_OK)
        return rc;
    c.status_only = true;
    if (!devices_move(&c.old, was, status, &now) && devices_count(store, email, &now) != SHM_OK)
        return SHM_ERROR;
    return presence_store(store, &c, &now, policy, now_ms, before, after);
}

int shm_presence_refresh(struct shm_store *store, const char *email,
                         const struct shm_presence_policy *policy, int64_t now_ms,
                         struct shm_presence *before, struct shm_presence *after)
{
    return recompute(store, email, policy, now_ms, before, after);
}

int shm_presence_device_bound(struct shm_store *store, const char *email, const char *device,
                              const struct shm_presence_policy *policy, int64_t now_ms,
                              struct shm_presence *before, struct shm_presence *after)
{
    unsigned char buf[DEVICE_KEY_MAX];
    MDB_val key;
    if (shm_device_key(email, device, buf, &key) != SHM_OK)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    int rc = hold_drop(store, txn, &key);
    return rc == SHM_OK ? recompute(store, email, policy, now_ms, before, after) : rc;
}

/* A departed device's status is held when there is a grace and something to hold. */
static int hold_departure(struct shm_store *store, const char *email, const char *device,
                          uint8_t status, const struct shm_presence_policy *policy,
                          int64_t now_ms)
{
    if (policy->grace_ms <= 0 || status == SHM_STATUS_OFFLINE)
        return SHM_OK;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    return hold_put(store, txn, email, device, status, now_ms + policy->grace_ms, now_ms);
}

int shm_presence_device_left(struct shm_store *store, const char *email, const char *device,
                             int32_t pid, uint64_t conn_id,
                             const struct shm_presence_policy *policy, int64_t now_ms,
                             struct shm_presence *before, struct shm_presence *after)
{
    struct shm_conn_owner owner;
    int rc = shm_conn_get(store, email, device, &owner);
    if (rc == SHM_OK && (owner.worker_pid != pid || owner.conn_id != conn_id))
        rc = SHM_NOT_FOUND;
    if (rc == SHM_OK)
        rc = shm_conn_release(store, email, device, pid, conn_id);
    if (rc != SHM_OK)
        return rc;
    if ((rc = hold_departure(store, email, device, owner.status, policy, now_ms)) != SHM_OK)
        return rc;
    return recompute(store, email, policy, now_ms, before, after);
}

int shm_presence_get(struct shm_store *store, const char *email, struct shm_presence *out)
{
    MDB_val key;
    MDB_txn *txn;
    memset(out, 0, sizeof *out);
    if (email_key(email, &key) != SHM_OK)
        return SHM_ERROR;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = record_read(store, txn, &key, out);
    store_read_end(store, txn);
    return rc;
}

/* The distinct e-mails of a set of users to recompute. */
struct email_set {
    char **emails;
    size_t count, cap;
    bool failed;
};

/* Added as they come, each as often as it comes; email_set_recompute sorts them and takes each
 * once (a search of the set at each addition made releasing a worker's 20,000 devices
 * quadratic, in one write transaction every other process waits for). */
static void email_set_add(struct email_set *set, const char *email)
{
    char *copy = strdup(email);
    if (copy == NULL ||
        grow_for((void **)&set->emails, &set->cap, set->count, sizeof *set->emails, 16) != 0) {
        free(copy);
        set->failed = true;
        return;
    }
    set->emails[set->count++] = copy;
}

static int email_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Recomputes each user of the set once, telling cb of a published change; frees the set. */
static int email_set_recompute(struct email_set *set, struct shm_store *store,
                               const struct shm_presence_policy *policy, int64_t now_ms, int rc,
                               shm_presence_cb cb, void *arg)
{
    if (set->count > 1)
        qsort(set->emails, set->count, sizeof *set->emails, email_compare);
    for (size_t i = 0; i < set->count; i++) {
        struct shm_presence before, after;
        if (i > 0 && strcmp(set->emails[i], set->emails[i - 1]) == 0)
            continue; /* the same user again */
        if (rc == SHM_OK &&
            (rc = recompute(store, set->emails[i], policy, now_ms, &before, &after)) == SHM_OK &&
            cb != NULL && before.status != after.status)
            cb(arg, set->emails[i], &before, &after, store);
    }
    for (size_t i = 0; i < set->count; i++)
        free(set->emails[i]);
    free(set->emails);
    return rc == SHM_OK && set->failed ? SHM_ERROR : rc;
}

/* Devices released from a worker, each leaving a hold. */
struct release {
    struct shm_store *store;
    const struct shm_presence_policy *policy;
    int64_t now_ms;
    struct email_set users;
    int result;
};

static void device_released(void *arg, const char *email, const char *device,
                            const struct shm_conn_owner *owner)
{
    struct release *r = arg;
    if (r->result == SHM_OK)
        r->result = hold_departure(r->store, email, device, owner->status, r->policy, r->now_ms);
    email_set_add(&r->users, email);
}

int shm_presence_release_worker(struct shm_store *store, int32_t pid,
                                const struct shm_presence_policy *policy, int64_t now_ms,
                                size_t *released, shm_presence_cb cb, void *arg)
{
    struct release r = { .store = store, .policy = policy, .now_ms = now_ms, .result = SHM_OK };
    int rc = shm_conn_release_worker(store, pid, released, device_released, &r);
    if (rc == SHM_OK)
        rc = r.result;
    return email_set_recompute(&r.users, store, policy, now_ms, rc, cb, arg);
}

int shm_presence_next_due(struct shm_store *store, int64_t *due_ms)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    *due_ms = 0;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_cursor_open(txn, store->presence_due, &cursor);
    if (rc == 0) {
        MDB_val key, value;
        rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
        if (rc == 0 && key.mv_size > 8)
            *due_ms = (int64_t)store_get_be64(key.mv_data);
        mdb_cursor_close(cursor);
    }
    store_read_end(store, txn);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : SHM_ERROR;
}

/* The users of the holds due by now_ms, up to max of them, from the time index. */
static int due_users(struct shm_store *store, MDB_txn *txn, int64_t now_ms, size_t max,
                     struct email_set *set)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->presence_due, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "presence holds");
    MDB_val key, value;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0 && set->count < max;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size <= 8 || (int64_t)store_get_be64(key.mv_data) > now_ms)
            break;
        const char *email = (const char *)key.mv_data + 8;
        size_t email_len = strnlen(email, key.mv_size - 8);
        if (email_len == key.mv_size - 8 || email_len == 0 || email_len > SHM_EMAIL_MAX) {
            /* Not an index entry this presenced writes: it would stay due forever. */
            if ((rc = mdb_cursor_del(cursor, 0)) != 0)
                break;
            continue;
        }
        email_set_add(set, email);
    }
    mdb_cursor_close(cursor);
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, "presence holds");
}

int shm_presence_expire(struct shm_store *store, const struct shm_presence_policy *policy,
                        int64_t now_ms, size_t max, shm_presence_cb cb, void *arg,
                        int64_t *next_due_ms)
{
    struct email_set set = { 0 };
    *next_due_ms = 0;
    int64_t first;
    int rc = shm_presence_next_due(store, &first);
    if (rc != SHM_OK || first == 0 || first > now_ms) {
        *next_due_ms = first;
        return rc; /* nothing due: no write transaction at all */
    }
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    rc = due_users(store, txn, now_ms, max, &set);
    rc = email_set_recompute(&set, store, policy, now_ms, rc, cb, arg);
    if (rc == SHM_OK)
        rc = shm_presence_next_due(store, next_due_ms);
    return rc;
}

/* The previous run's devices, gathered before any is held (no write under the walk's cursor). */
struct departed {
    struct departed_device {
        char email[SHM_EMAIL_MAX + 1];
        char device[SHM_DEVICE_MAX + 1];
        uint8_t status;
    } *list;
    size_t count, cap;
    bool failed;
};

static void departed_add(void *arg, const char *email, const char *device,
                         const struct shm_conn_owner *owner)
{
    struct departed *d = arg;
    if (grow_for((void **)&d->list, &d->cap, d->count, sizeof *d->list, 64) != 0) {
        d->failed = true;
        return;
    }
    struct departed_device *dev = &d->list[d->count++];
    memcpy(dev->email, email, strlen(email) + 1);
    memcpy(dev->device, device, strlen(device) + 1);
    dev->status = owner->status;
}

int shm_presence_restart(struct shm_store *store, const struct shm_presence_policy *policy,
                         int64_t now_ms)
{
    struct departed d = { 0 };
    int rc = shm_conn_walk_all(store, departed_add, &d) < 0 || d.failed ? SHM_ERROR : SHM_OK;
    MDB_txn *txn = rc == SHM_OK ? store_batch_txn(store) : NULL;
    if (txn == NULL)
        rc = SHM_ERROR;
    /* Every device of the previous run is held, offline ones too, so that the end of each hold
     * recomputes its user once the connection records are gone (with no grace: at once). */
    int64_t grace = policy->grace_ms > 0 ? policy->grace_ms : 0;
    for (size_t i = 0; rc == SHM_OK && i < d.count; i++)
        rc = hold_put(store, txn, d.list[i].email, d.list[i].device, d.list[i].status,
                      now_ms + grace, now_ms);
    free(d.list);
    return rc;
}

int shm_presence_last_seen_expire(struct shm_store *store, int64_t now_ms, size_t max,
                                  struct shm_sweep *sweep, size_t *removed)
{
    return store_expired_sweep(store, store->presence, now_ms, max, sweep, removed, "last seen");
}
