/* store_tool: reads and writes connection records of a running presenced's store, for tests.
 *   store_tool DATA_DIR claim EMAIL DEVICE PID CONN_ID   — record a connection as worker PID's
 *   store_tool DATA_DIR devices EMAIL                     — print how many devices EMAIL has
 *   store_tool DATA_DIR close PID CONN_ID                 — mail worker PID to close a
 *                                                           superseded connection, ring it
 *   store_tool DATA_DIR schema N                          — overwrite the schema version (to
 *                                                           break and mend a running store)
 *   store_tool DATA_DIR fill                              — pin the store with a read
 *                                                           transaction, fill its map, print
 *                                                           "full", hold until stdin closes
 *   store_tool DATA_DIR notify EMAIL MESSAGE              — queue a notification as any
 *                                                           presenced process would, and ring
 *                                                           the workers holding EMAIL's devices */
#include "../../common/clock.h"
#include "../../common/notification.h"
#include "../../common/wake.h"
#include "../../shm/conn.h"
#include "../../shm/mail.h"
#include "../../shm/notif.h"
#include "../../shm/store.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int claim(struct shm_store *store, char **argv)
{
    struct shm_conn_owner owner = { (int32_t)atoi(argv[2]), strtoull(argv[3], NULL, 10),
                                    SHM_STATUS_ONLINE, 0 };
    struct shm_conn_owner previous;
    int had;
    if (shm_conn_claim(store, argv[0], argv[1], &owner, &previous, &had) != SHM_OK)
        return 1;
    return shm_batch_commit(store) == SHM_OK ? 0 : 1;
}

static int close_mail(struct shm_store *store, const char *dir, char **argv)
{
    pid_t pid = (pid_t)atoi(argv[0]);
    unsigned long long conn_id = strtoull(argv[1], NULL, 10);
    unsigned char payload[8];
    for (int i = 7; i >= 0; i--, conn_id >>= 8)
        payload[i] = (unsigned char)conn_id;
    struct wake_bells bells;
    if (shm_mail_post(store, pid, SHM_MAIL_CLOSE_CONN, payload, sizeof payload) != SHM_OK ||
        shm_batch_commit(store) != SHM_OK || wake_init(&bells, dir) != 0)
        return 1;
    return wake_ring(&bells, pid) == 0 ? 0 : 1;
}

static int notify(struct shm_store *store, const char *dir, const char *email, const char *message)
{
    struct notification n = { .source = "store_tool", .message = message, .app = "Tests" };
    char id[NOTIFICATION_ID_LEN + 1], json[SHM_NOTIF_JSON_MAX];
    int len = notification_id_make(id) == 0
                  ? notification_render(&n, id, clock_wall_ms() / 1000, json, sizeof json)
                  : -1;
    int32_t rings[64];
    size_t ring_count, dropped;
    int64_t now = clock_wall_ms();
    struct wake_bells bells;
    if (len < 0 ||
        shm_notif_send(store, email, json, (size_t)len, now, now + 3600 * 1000, 100, rings, 64,
                       &ring_count, &dropped) != SHM_OK ||
        shm_batch_commit(store) != SHM_OK || wake_init(&bells, dir) != 0)
        return 1;
    for (size_t i = 0; i < ring_count; i++)
        wake_ring(&bells, rings[i]);
    printf("%s\n", id);
    return 0;
}

/* Raw LMDB on purpose: the shm_ API refuses a store of another schema. */
static int schema_set(const char *dir, unsigned version)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    unsigned char value_buf[4] = { (unsigned char)(version >> 24), (unsigned char)(version >> 16),
                                   (unsigned char)(version >> 8), (unsigned char)version };
    MDB_val key = { 6, "schema" }, value = { 4, value_buf };
    int rc = mdb_env_create(&env);
    if (rc == 0 && (rc = mdb_env_set_maxdbs(env, 8)) == 0 &&
        (rc = mdb_env_open(env, dir, MDB_NOTLS, 0640)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0 &&
            (rc = mdb_put(txn, meta, &key, &value, 0)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    if (rc != 0)
        fprintf(stderr, "store_tool: %s\n", mdb_strerror(rc));
    return rc == 0 ? 0 : 1;
}

/* Writes filler records in transactions of `count` until even one small record does not fit.
 * The read transaction held meanwhile keeps LMDB from reusing any page freed after it. */
static int map_fill(MDB_env *env, MDB_dbi meta)
{
    static char blob[2048];
    size_t size = sizeof blob, count = 64, serial = 0;
    while (count > 0) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc != 0)
            return rc;
        for (size_t i = 0; rc == 0 && i < count; i++) {
            char name[32];
            snprintf(name, sizeof name, "filler-%zu", serial++);
            MDB_val key = { strlen(name), name }, value = { size, blob };
            rc = mdb_put(txn, meta, &key, &value, 0);
        }
        if (rc != 0)
            mdb_txn_abort(txn);
        else if ((rc = mdb_txn_commit(txn)) == 0) /* frees txn, whatever it returns */
            continue;
        if (rc != MDB_MAP_FULL)
            return rc;
        if (count > 1)
            count /= 2;
        else if (size > 8)
            size /= 4;
        else
            count = 0;
    }
    return 0;
}

static int fill(const char *dir)
{
    MDB_env *env;
    MDB_txn *pin = NULL, *txn;
    MDB_dbi meta;
    int rc = mdb_env_create(&env);
    if (rc == 0 && (rc = mdb_env_set_maxdbs(env, 16)) == 0 &&
        (rc = mdb_env_open(env, dir, MDB_NOTLS, 0640)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0 && (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &pin)) == 0)
        rc = map_fill(env, meta);
    if (rc == 0) {
        printf("full\n");
        fflush(stdout);
        while (getchar() != EOF) {
        }
    }
    if (pin != NULL)
        mdb_txn_abort(pin);
    mdb_env_close(env);
    if (rc != 0)
        fprintf(stderr, "store_tool: %s\n", mdb_strerror(rc));
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[2], "fill") == 0)
        return fill(argv[1]);
    if (argc == 4 && strcmp(argv[2], "schema") == 0)
        return schema_set(argv[1], (unsigned)atoi(argv[3]));
    if (argc < 4) {
        fprintf(stderr, "usage: store_tool DATA_DIR claim|devices ...\n");
        return 2;
    }
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = { argv[1], 256LL << 20, 16LL << 30, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "store_tool: %s\n", err);
        return 1;
    }
    int rc = 2;
    if (strcmp(argv[2], "claim") == 0 && argc == 7) {
        rc = claim(store, argv + 3);
    } else if (strcmp(argv[2], "close") == 0 && argc == 5) {
        rc = close_mail(store, argv[1], argv + 3);
    } else if (strcmp(argv[2], "notify") == 0 && argc == 5) {
        rc = notify(store, argv[1], argv[3], argv[4]);
    } else if (strcmp(argv[2], "devices") == 0 && argc == 4) {
        int count = shm_conn_devices(store, argv[3], NULL, NULL);
        printf("%d\n", count);
        rc = count < 0 ? 1 : 0;
    }
    shm_store_close(store);
    return rc;
}
