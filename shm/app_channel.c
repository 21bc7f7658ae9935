/* app_channel: what the AppService channel keeps in the store — which worker connections each
 * app has open, the latest change of each PUID (replayed after an absence), and the events
 * mailed to those connections (SPEC.md §5). */
#include "app_channel.h"

#include "mail.h"
#include "store_internal.h"

#include "../common/clock.h"
#include "../common/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CONN_KEY_LEN (SHM_APPID_LEN + 4 + 8)
#define CHANGE_KEY_LEN (SHM_APPID_LEN + SHM_PUID_LEN)
/* SHM_MAIL_APP_EVENT: conn_id, PUID, status, be64 since (the status's), be64 when the change
 * was recorded. */
#define EVENT_LEN (8 + SHM_PUID_LEN + 1 + 8 + 8)
/* app_changes: u8 status, be64 when published, be64 since; an older presenced wrote the first
 * two only (since is then when). */
#define CHANGE_LEN (1 + 8 + 8)
#define CHANGE_LEN_V0 (1 + 8)

static void conn_key(const char *appid, int32_t pid, uint64_t conn_id, unsigned char *buf)
{
    memcpy(buf, appid, SHM_APPID_LEN);
    store_put_be32(buf + SHM_APPID_LEN, (uint32_t)pid);
    store_put_be64(buf + SHM_APPID_LEN + 4, conn_id);
}

/* Calls cb with each connection key of appid (or of every app when appid is NULL). */
typedef int (*conn_cb)(void *arg, MDB_cursor *cursor, const MDB_val *key);

static int conns_walk(struct shm_store *store, MDB_txn *txn, const char *appid, conn_cb cb,
                      void *arg)
{
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->app_conns, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "app connections");
    MDB_val key = { appid ? SHM_APPID_LEN : 0, (void *)appid }, value;
    int result = SHM_OK;
    for (rc = mdb_cursor_get(cursor, &key, &value, appid ? MDB_SET_RANGE : MDB_FIRST);
         rc == 0 && key.mv_size == CONN_KEY_LEN &&
         (appid == NULL || memcmp(key.mv_data, appid, SHM_APPID_LEN) == 0);
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT))
        if ((result = cb(arg, cursor, &key)) != SHM_OK)
            break;
    mdb_cursor_close(cursor);
    return result;
}

static int conn_count(void *arg, MDB_cursor *cursor, const MDB_val *key)
{
    (void)cursor;
    (void)key;
    (*(size_t *)arg)++;
    return SHM_OK;
}

int shm_app_conn_add(struct shm_store *store, const char *appid, int32_t pid, uint64_t conn_id,
                     size_t *others)
{
    unsigned char buf[CONN_KEY_LEN];
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL || strlen(appid) != SHM_APPID_LEN)
        return SHM_ERROR;
    *others = 0;
    int rc = conns_walk(store, txn, appid, conn_count, others);
    if (rc != SHM_OK)
        return rc;
    conn_key(appid, pid, conn_id, buf);
    MDB_val key = { sizeof buf, buf }, empty = { 0, "" };
    int mrc = mdb_put(txn, store->app_conns, &key, &empty, 0);
    return mrc == 0 ? SHM_OK : store_batch_fail(store, mrc, "app connection");
}

/* The app is away from now_ms when it has no connection left; *marked (may be NULL) says so. */
static int away_mark(struct shm_store *store, MDB_txn *txn, const char *appid, int64_t now_ms,
                     bool *marked)
{
    size_t left = 0;
    int rc = conns_walk(store, txn, appid, conn_count, &left);
    if (marked != NULL)
        *marked = rc == SHM_OK && left == 0;
    if (rc != SHM_OK || left > 0)
        return rc;
    unsigned char when[8];
    store_put_be64(when, (uint64_t)now_ms);
    MDB_val key = { SHM_APPID_LEN, (void *)appid }, value = { sizeof when, when };
    int mrc = mdb_put(txn, store->app_away, &key, &value, 0);
    return mrc == 0 ? SHM_OK : store_batch_fail(store, mrc, "app away");
}

int shm_app_conn_remove(struct shm_store *store, const char *appid, int32_t pid, uint64_t conn_id,
                        int64_t now_ms)
{
    unsigned char buf[CONN_KEY_LEN];
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL || strlen(appid) != SHM_APPID_LEN)
        return SHM_ERROR;
    conn_key(appid, pid, conn_id, buf);
    MDB_val key = { sizeof buf, buf };
    int rc = mdb_del(txn, store->app_conns, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "app connection");
    return away_mark(store, txn, appid, now_ms, NULL);
}

/* Keeps out (*count of max) the busiest, most first, with (appid, n) offered. */
static void busiest_offer(struct shm_app_busy *out, size_t max, size_t *count, const char *appid,
                          uint64_t n)
{
    size_t at = *count;
    while (at > 0 && out[at - 1].connections < n)
        at--;
    if (at >= max)
        return;
    size_t last = *count < max ? *count : max - 1;
    memmove(out + at + 1, out + at, (last - at) * sizeof *out);
    memcpy(out[at].appid, appid, SHM_APPID_LEN);
    out[at].appid[SHM_APPID_LEN] = '\0';
    out[at].connections = n;
    if (*count < max)
        (*count)++;
}

int shm_app_conns_busiest(struct shm_store *store, struct shm_app_busy *out, size_t max,
                          size_t *count)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    *count = 0;
    if (max == 0)
        return SHM_OK;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, store->app_conns, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    /* Keys are ordered by appid: each app's connections come together. */
    char current[SHM_APPID_LEN + 1] = "";
    uint64_t run = 0;
    MDB_val key, value;
    int rc;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        if (key.mv_size != CONN_KEY_LEN)
            continue;
        if (run > 0 && memcmp(key.mv_data, current, SHM_APPID_LEN) == 0) {
            run++;
            continue;
        }
        if (run > 0)
            busiest_offer(out, max, count, current, run);
        memcpy(current, key.mv_data, SHM_APPID_LEN);
        run = 1;
    }
    if (run > 0)
        busiest_offer(out, max, count, current, run);
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return rc == MDB_NOTFOUND ? SHM_OK : store_result(rc);
}

int shm_app_conns(struct shm_store *store, const char *appid, struct shm_app_conn **out,
                  size_t *count)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    size_t cap = 0;
    *out = NULL;
    *count = 0;
    if (strlen(appid) != SHM_APPID_LEN || store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    if (mdb_cursor_open(txn, store->app_conns, &cursor) != 0) {
        store_read_end(store, txn);
        return SHM_ERROR;
    }
    MDB_val key = { SHM_APPID_LEN, (void *)appid }, value;
    int rc;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && key.mv_size == CONN_KEY_LEN && memcmp(key.mv_data, appid, SHM_APPID_LEN) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        const unsigned char *k = key.mv_data;
        if (grow_for((void **)out, &cap, *count, sizeof **out, 4) != 0) {
            rc = ENOMEM;
            break;
        }
        (*out)[(*count)++] = (struct shm_app_conn){
            .pid = (int32_t)store_get_be32(k + SHM_APPID_LEN),
            .conn_id = store_get_be64(k + SHM_APPID_LEN + 4),
        };
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(*out);
        *out = NULL;
        *count = 0;
        return SHM_ERROR;
    }
    return SHM_OK;
}

struct dead_conns {
    int32_t pid;
    char (*appids)[SHM_APPID_LEN + 1];
    size_t count, cap;
};

static int dead_collect(void *arg, MDB_cursor *cursor, const MDB_val *key)
{
    struct dead_conns *dead = arg;
    const unsigned char *k = key->mv_data;
    if (store_get_be32(k + SHM_APPID_LEN) != (uint32_t)dead->pid)
        return SHM_OK;
    if (grow_for((void **)&dead->appids, &dead->cap, dead->count, sizeof *dead->appids, 4) != 0)
        return SHM_ERROR;
    memcpy(dead->appids[dead->count], k, SHM_APPID_LEN);
    dead->appids[dead->count++][SHM_APPID_LEN] = '\0';
    return mdb_cursor_del(cursor, 0) == 0 ? SHM_OK : SHM_ERROR;
}

int shm_app_conn_release_worker(struct shm_store *store, int32_t pid, int64_t now_ms,
                                shm_app_gone_cb gone, void *arg)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct dead_conns dead = { .pid = pid };
    int rc = conns_walk(store, txn, NULL, dead_collect, &dead);
    for (size_t i = 0; rc == SHM_OK && i < dead.count; i++) {
        /* The walk is in key order: an app's connections come together, and count once. */
        if (i > 0 && strcmp(dead.appids[i], dead.appids[i - 1]) == 0)
            continue;
        bool marked = false;
        rc = away_mark(store, txn, dead.appids[i], now_ms, &marked);
        if (rc == SHM_OK && marked && gone != NULL)
            gone(arg, dead.appids[i]);
    }
    free(dead.appids);
    return rc;
}

struct away_all {
    struct shm_store *store;
    int64_t now_ms;
};

static int away_set(void *arg, MDB_cursor *cursor, const MDB_val *key)
{
    struct away_all *all = arg;
    struct shm_store *store = all->store;
    MDB_txn *txn = mdb_cursor_txn(cursor);
    MDB_val app = { SHM_APPID_LEN, key->mv_data }, value;
    if (mdb_get(txn, store->app_away, &app, &value) == 0)
        return SHM_OK; /* away already: since the earlier time */
    unsigned char when[8];
    store_put_be64(when, (uint64_t)all->now_ms);
    value.mv_size = sizeof when;
    value.mv_data = when;
    int rc = mdb_put(txn, store->app_away, &app, &value, 0);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "app away");
}

int shm_app_conns_restart(struct shm_store *store, int64_t now_ms)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct away_all all = { store, now_ms };
    return conns_walk(store, txn, NULL, away_set, &all);
}

/* One app's share of an event: the change recorded, the mail to each of its connections. */
struct event_post {
    struct shm_store *store;
    const char *puid;
    uint8_t status;
    int64_t since_ms, now_ms;
    int32_t *rings;
    size_t cap, *ring_count;
};

static int event_mail(void *arg, MDB_cursor *cursor, const MDB_val *key)
{
    struct event_post *post = arg;
    const unsigned char *k = key->mv_data;
    (void)cursor;
    int32_t pid = (int32_t)store_get_be32(k + SHM_APPID_LEN);
    unsigned char payload[EVENT_LEN];
    memcpy(payload, k + SHM_APPID_LEN + 4, 8);
    memcpy(payload + 8, post->puid, SHM_PUID_LEN);
    payload[8 + SHM_PUID_LEN] = post->status;
    store_put_be64(payload + 8 + SHM_PUID_LEN + 1, (uint64_t)post->since_ms);
    store_put_be64(payload + 8 + SHM_PUID_LEN + 9, (uint64_t)post->now_ms);
    int rc = shm_mail_post(post->store, pid, SHM_MAIL_APP_EVENT, payload, sizeof payload);
    size_t i;
    for (i = 0; i < *post->ring_count && post->rings[i] != pid; i++) {
    }
    if (i == *post->ring_count && i < post->cap)
        post->rings[(*post->ring_count)++] = pid;
    return rc;
}

struct grant_event {
    struct shm_store *store;
    uint8_t status;
    int64_t since_ms;
    const char *only_appid;
    int64_t now_ms;
    int32_t *rings;
    size_t cap, *ring_count;
    int result;
};

static void grant_event(void *arg, const char *appid, const char *puid)
{
    struct grant_event *ev = arg;
    if (ev->result != SHM_OK || (ev->only_appid && strcmp(appid, ev->only_appid) != 0))
        return;
    MDB_txn *txn = store_batch_txn(ev->store);
    if (txn == NULL) {
        ev->result = SHM_ERROR;
        return;
    }
    unsigned char key_buf[CHANGE_KEY_LEN], value_buf[CHANGE_LEN];
    memcpy(key_buf, appid, SHM_APPID_LEN);
    memcpy(key_buf + SHM_APPID_LEN, puid, SHM_PUID_LEN);
    value_buf[0] = ev->status;
    store_put_be64(value_buf + 1, (uint64_t)ev->now_ms);
    store_put_be64(value_buf + 9, (uint64_t)ev->since_ms);
    MDB_val key = { sizeof key_buf, key_buf }, value = { sizeof value_buf, value_buf };
    int rc = mdb_put(txn, ev->store->app_changes, &key, &value, 0);
    if (rc != 0) {
        ev->result = store_batch_fail(ev->store, rc, "app change");
        return;
    }
    struct event_post post = { .store = ev->store,
                               .puid = puid,
                               .status = ev->status,
                               .since_ms = ev->since_ms,
                               .now_ms = ev->now_ms,
                               .rings = ev->rings,
                               .cap = ev->cap,
                               .ring_count = ev->ring_count };
    ev->result = conns_walk(ev->store, txn, appid, event_mail, &post);
}

int shm_app_event_publish(struct shm_store *store, const char *email, uint8_t status,
                          int64_t since_ms, const char *only_appid, int64_t now_ms, int32_t *rings,
                          size_t cap, size_t *ring_count)
{
    struct grant_event ev = { store,  status, since_ms,   only_appid, now_ms,
                              rings,  cap,    ring_count, SHM_OK };
    *ring_count = 0;
    if (shm_grant_list_user(store, email, grant_event, &ev) < 0)
        return SHM_ERROR;
    return ev.result;
}

void shm_app_presence_changed(void *arg, const char *email, const struct shm_presence *before,
                              const struct shm_presence *after, struct shm_store *store)
{
    struct shm_rings *rings = arg;
    int32_t found[SHM_RINGS_MAX];
    size_t count = 0;
    (void)before;
    shm_app_event_publish(store, email, after->status, after->since_ms, NULL, clock_wall_ms(),
                          found, SHM_RINGS_MAX, &count);
    for (size_t i = 0; i < count; i++) {
        size_t j = 0;
        while (j < rings->count && rings->pids[j] != found[i])
            j++;
        if (j == rings->count && rings->count < SHM_RINGS_MAX)
            rings->pids[rings->count++] = found[i];
    }
}

int shm_app_event_decode(const void *payload, size_t len, uint64_t *conn_id, char *puid,
                         uint8_t *status, int64_t *since_ms, int64_t *changed_ms)
{
    const unsigned char *p = payload;
    if (len != EVENT_LEN)
        return -1;
    *conn_id = store_get_be64(p);
    memcpy(puid, p + 8, SHM_PUID_LEN);
    puid[SHM_PUID_LEN] = '\0';
    *status = p[8 + SHM_PUID_LEN];
    *since_ms = (int64_t)store_get_be64(p + 8 + SHM_PUID_LEN + 1);
    *changed_ms = (int64_t)store_get_be64(p + 8 + SHM_PUID_LEN + 9);
    return 0;
}

int shm_app_away_take(struct shm_store *store, const char *appid, int64_t now_ms,
                      int64_t *since_ms)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL || strlen(appid) != SHM_APPID_LEN)
        return SHM_ERROR;
    MDB_val akey = { SHM_APPID_LEN, (void *)appid }, avalue;
    int rc = mdb_get(txn, store->app_away, &akey, &avalue);
    if (rc == MDB_NOTFOUND || (rc == 0 && avalue.mv_size != 8))
        return 0;
    if (rc != 0)
        return store_batch_fail(store, rc, "app away");
    *since_ms = (int64_t)store_get_be64(avalue.mv_data);
    if (*since_ms < now_ms - SHM_APP_CHANGES_KEEP_MS)
        *since_ms = now_ms - SHM_APP_CHANGES_KEEP_MS;
    rc = mdb_del(txn, store->app_away, &akey, NULL);
    if (rc != 0)
        return store_batch_fail(store, rc, "app away");
    return 1;
}

int shm_app_changes_page(struct shm_store *store, const char *appid, int64_t since_ms,
                         char *after_puid, size_t max, shm_app_change_cb cb, void *arg,
                         bool *done)
{
    *done = false;
    MDB_txn *txn = store_batch_txn(store);
    size_t after_len = strlen(after_puid);
    if (txn == NULL || strlen(appid) != SHM_APPID_LEN || after_len > SHM_PUID_LEN)
        return SHM_ERROR;
    unsigned char start[CHANGE_KEY_LEN];
    memcpy(start, appid, SHM_APPID_LEN);
    memcpy(start + SHM_APPID_LEN, after_puid, after_len);
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(txn, store->app_changes, &cursor);
    if (rc != 0)
        return store_batch_fail(store, rc, "app changes");
    MDB_val key = { SHM_APPID_LEN + after_len, start }, value;
    int count = 0;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
         rc == 0 && (size_t)count < max && key.mv_size == CHANGE_KEY_LEN &&
         memcmp(key.mv_data, appid, SHM_APPID_LEN) == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        const char *puid = (const char *)key.mv_data + SHM_APPID_LEN;
        if (after_len == SHM_PUID_LEN && memcmp(puid, after_puid, SHM_PUID_LEN) == 0)
            continue; /* where the last page stopped */
        memcpy(after_puid, puid, SHM_PUID_LEN);
        after_puid[SHM_PUID_LEN] = '\0';
        after_len = SHM_PUID_LEN;
        const unsigned char *v = value.mv_data;
        if ((value.mv_size != CHANGE_LEN && value.mv_size != CHANGE_LEN_V0) ||
            (int64_t)store_get_be64(v + 1) < since_ms)
            continue;
        cb(arg, after_puid, v[0],
           (int64_t)store_get_be64(value.mv_size == CHANGE_LEN ? v + 9 : v + 1));
        count++;
    }
    *done = rc != 0 || key.mv_size != CHANGE_KEY_LEN ||
            memcmp(key.mv_data, appid, SHM_APPID_LEN) != 0;
    mdb_cursor_close(cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "app changes");
    return count;
}

int shm_app_changes_since_away(struct shm_store *store, const char *appid, int64_t now_ms,
                               shm_app_change_cb cb, void *arg)
{
    int64_t since_ms;
    int away = shm_app_away_take(store, appid, now_ms, &since_ms);
    if (away <= 0)
        return away;
    char after[SHM_PUID_LEN + 1] = "";
    bool done = false;
    int total = 0;
    while (!done) {
        int count = shm_app_changes_page(store, appid, since_ms, after, 1000, cb, arg, &done);
        if (count < 0)
            return count;
        total += count;
    }
    return total;
}
