/* mail: messages from one process to another, kept in the store until the target takes them. */
#include "mail.h"

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAIL_KEY_SIZE (4 + 8 + 4) /* target pid, store sequence, sender pid */

/* A cursor over one target's mail: its keys are the ones that begin with the target's pid. */
struct mail_cursor {
    MDB_cursor *cursor;
    unsigned char prefix[4];
    MDB_val key, value;
};

static int mail_open(struct shm_store *store, MDB_txn *txn, int32_t pid, struct mail_cursor *m)
{
    store_put_be32(m->prefix, (uint32_t)pid);
    return mdb_cursor_open(txn, store->mail, &m->cursor);
}

static int mail_first(struct mail_cursor *m)
{
    m->key = (MDB_val){ sizeof m->prefix, m->prefix };
    return mdb_cursor_get(m->cursor, &m->key, &m->value, MDB_SET_RANGE);
}

/* After a delete the cursor stands on the record that followed; MDB_NEXT returns it. */
static int mail_next(struct mail_cursor *m)
{
    return mdb_cursor_get(m->cursor, &m->key, &m->value, MDB_NEXT);
}

/* Whether the last get (its rc) found a message of this target. */
static bool mail_found(const struct mail_cursor *m, int rc)
{
    return rc == 0 && m->key.mv_size == MAIL_KEY_SIZE &&
           memcmp(m->key.mv_data, m->prefix, sizeof m->prefix) == 0;
}

static uint64_t mail_seq(const struct mail_cursor *m)
{
    return store_get_be64((unsigned char *)m->key.mv_data + 4);
}

int shm_mail_post(struct shm_store *store, int32_t target_pid, uint8_t type, const void *payload,
                  size_t len)
{
    if (len > SHM_MAIL_PAYLOAD_MAX)
        return SHM_ERROR;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    /* The store's sequence orders a target's mail as it was committed, whoever posted it, and
     * is never handed out twice (the master posts from visits that each open the store anew; a
     * pid can come back), so a message never replaces another: MDB_NOOVERWRITE would say so. */
    uint64_t seq;
    int rc = store_seq_next(store, txn, &seq);
    if (rc != SHM_OK)
        return rc;
    unsigned char key_buf[MAIL_KEY_SIZE], value_buf[1 + SHM_MAIL_PAYLOAD_MAX];
    store_put_be32(key_buf, (uint32_t)target_pid);
    store_put_be64(key_buf + 4, seq);
    store_put_be32(key_buf + 12, (uint32_t)getpid());
    value_buf[0] = type;
    if (len > 0)
        memcpy(value_buf + 1, payload, len);
    MDB_val key = { sizeof key_buf, key_buf }, value = { 1 + len, value_buf };
    rc = mdb_put(txn, store->mail, &key, &value, MDB_NOOVERWRITE);
    return rc == 0 ? SHM_OK : store_batch_fail(store, rc, "mail post");
}

/* Walks the mail of pid; with cb it hands each message over, and deletes them all. */
static int mail_walk(struct shm_store *store, int32_t pid, shm_mail_cb cb, void *arg)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct mail_cursor m;
    int rc = mail_open(store, txn, pid, &m);
    if (rc != 0)
        return store_batch_fail(store, rc, "mail take");
    int count = 0;
    for (rc = mail_first(&m); mail_found(&m, rc); rc = mail_next(&m)) {
        if (cb != NULL && m.value.mv_size >= 1 && m.value.mv_size <= 1 + SHM_MAIL_PAYLOAD_MAX) {
            /* A copy: cb may write to the store, which can move the page under value. */
            unsigned char copy[1 + SHM_MAIL_PAYLOAD_MAX];
            memcpy(copy, m.value.mv_data, m.value.mv_size);
            cb(arg, (int32_t)store_get_be32((unsigned char *)m.key.mv_data + 12), copy[0],
               copy + 1, m.value.mv_size - 1);
        }
        if ((rc = mdb_cursor_del(m.cursor, 0)) != 0)
            break;
        count++;
    }
    mdb_cursor_close(m.cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "mail take");
    return count;
}

int shm_mail_take(struct shm_store *store, int32_t pid, shm_mail_cb cb, void *arg)
{
    return mail_walk(store, pid, cb, arg);
}

#define INBOX_HEAD 7 /* be32 sender, u8 type, be16 length */

static int inbox_add(struct shm_mail_inbox *inbox, const MDB_val *key, const MDB_val *value)
{
    size_t payload = value->mv_size - 1, need = inbox->len + INBOX_HEAD + payload;
    if (need > inbox->cap) {
        size_t cap = inbox->cap ? inbox->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *grown = realloc(inbox->buf, cap);
        if (grown == NULL)
            return SHM_ERROR;
        inbox->buf = grown;
        inbox->cap = cap;
    }
    unsigned char *at = inbox->buf + inbox->len, *v = value->mv_data;
    memcpy(at, (unsigned char *)key->mv_data + 12, 4);
    at[4] = v[0];
    at[5] = (unsigned char)(payload >> 8);
    at[6] = (unsigned char)payload;
    memcpy(at + INBOX_HEAD, v + 1, payload);
    inbox->len = need;
    inbox->count++;
    inbox->last_seq = store_get_be64((unsigned char *)key->mv_data + 4);
    return SHM_OK;
}

int shm_mail_read(struct shm_store *store, int32_t pid, struct shm_mail_inbox *inbox)
{
    inbox->len = inbox->count = 0;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    struct mail_cursor m;
    int rc = mail_open(store, txn, pid, &m);
    if (rc != 0) {
        store_read_end(store, txn);
        return store_result(rc);
    }
    int result = SHM_OK;
    for (rc = mail_first(&m); mail_found(&m, rc); rc = mail_next(&m)) {
        if (m.value.mv_size < 1 || m.value.mv_size > 1 + SHM_MAIL_PAYLOAD_MAX)
            continue;
        if ((result = inbox_add(inbox, &m.key, &m.value)) != SHM_OK)
            break;
    }
    mdb_cursor_close(m.cursor);
    store_read_end(store, txn);
    if (result == SHM_OK && rc != 0 && rc != MDB_NOTFOUND)
        result = store_result(rc);
    if (result != SHM_OK) {
        inbox->len = inbox->count = 0;
        return result;
    }
    return (int)inbox->count;
}

void shm_mail_each(const struct shm_mail_inbox *inbox, shm_mail_cb cb, void *arg)
{
    for (size_t at = 0; at + INBOX_HEAD <= inbox->len;) {
        const unsigned char *m = inbox->buf + at;
        size_t payload = ((size_t)m[5] << 8) | m[6];
        cb(arg, (int32_t)store_get_be32(m), m[4], m + INBOX_HEAD, payload);
        at += INBOX_HEAD + payload;
    }
}

int shm_mail_forget(struct shm_store *store, int32_t pid, uint64_t upto)
{
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    struct mail_cursor m;
    int rc = mail_open(store, txn, pid, &m);
    if (rc != 0)
        return store_batch_fail(store, rc, "mail forget");
    for (rc = mail_first(&m); mail_found(&m, rc) && mail_seq(&m) <= upto; rc = mail_next(&m))
        if ((rc = mdb_cursor_del(m.cursor, 0)) != 0)
            break;
    mdb_cursor_close(m.cursor);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_batch_fail(store, rc, "mail forget");
    return SHM_OK;
}

void shm_mail_inbox_free(struct shm_mail_inbox *inbox)
{
    free(inbox->buf);
    memset(inbox, 0, sizeof *inbox);
}

int shm_mail_drop(struct shm_store *store, int32_t pid)
{
    int rc = mail_walk(store, pid, NULL, NULL);
    return rc < 0 ? rc : SHM_OK;
}

void shm_mail_put_conn_id(unsigned char out[8], uint64_t conn_id)
{
    store_put_be64(out, conn_id);
}

uint64_t shm_mail_conn_id(const void *payload)
{
    return store_get_be64(payload);
}
