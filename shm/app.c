/* app: registered applications — owner, domain and its proof, API key hash, state
 * (SPEC.md §4). */
#include "app.h"

#include "grant.h"
#include "outbox.h"
#include "store_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An app is stored as JSON: a record operators can read with mdb_dump, and fields can be added
 * without a new layout. The key hash is hex. */
char *shm_app_encode(const struct shm_app *app)
{
    char hash_hex[2 * SHM_APP_KEY_HASH_LEN + 1] = "";
    for (int i = 0; app->has_key && i < SHM_APP_KEY_HASH_LEN; i++)
        snprintf(hash_hex + 2 * i, 3, "%02x", app->key_hash[i]);
    struct json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object_object_add(o, "owner", json_object_new_string(app->owner));
    json_object_object_add(o, "name", json_object_new_string(app->name));
    json_object_object_add(o, "domain", json_object_new_string(app->domain));
    json_object_object_add(o, "description", json_object_new_string(app->description));
    json_object_object_add(o, "domain_key", json_object_new_string(app->domain_key));
    json_object_object_add(o, "key_hash", json_object_new_string(hash_hex));
    json_object_object_add(o, "validated", json_object_new_boolean(app->validated));
    json_object_object_add(o, "active", json_object_new_boolean(app->active));
    json_object_object_add(o, "created", json_object_new_int64(app->created_ms));
    char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

static void string_field(struct json_object *o, const char *key, char *out, size_t cap)
{
    struct json_object *v;
    const char *text = json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
    snprintf(out, cap, "%s", text ? text : "");
}

static bool bool_field(struct json_object *o, const char *key)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static int app_decode(const char *appid, const MDB_val *value, struct shm_app *out)
{
    return shm_app_decode(appid, value->mv_data, value->mv_size, out);
}

int shm_app_decode(const char *appid, const void *data, size_t len, struct shm_app *out)
{
    memset(out, 0, sizeof *out);
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o =
        tok && len <= SHM_APP_JSON_MAX ? json_tokener_parse_ex(tok, data, (int)len) : NULL;
    json_tokener_free(tok);
    if (o == NULL || !json_object_is_type(o, json_type_object) ||
        strlen(appid) != SHM_APPID_LEN) {
        json_object_put(o);
        return SHM_ERROR;
    }
    snprintf(out->appid, sizeof out->appid, "%s", appid);
    string_field(o, "owner", out->owner, sizeof out->owner);
    string_field(o, "name", out->name, sizeof out->name);
    string_field(o, "domain", out->domain, sizeof out->domain);
    string_field(o, "description", out->description, sizeof out->description);
    string_field(o, "domain_key", out->domain_key, sizeof out->domain_key);
    char hash_hex[2 * SHM_APP_KEY_HASH_LEN + 1];
    string_field(o, "key_hash", hash_hex, sizeof hash_hex);
    out->has_key = strlen(hash_hex) == 2 * SHM_APP_KEY_HASH_LEN;
    for (int i = 0; out->has_key && i < SHM_APP_KEY_HASH_LEN; i++) {
        unsigned byte;
        if (sscanf(hash_hex + 2 * i, "%2x", &byte) != 1)
            out->has_key = false;
        out->key_hash[i] = (unsigned char)byte;
    }
    out->validated = bool_field(o, "validated");
    out->active = bool_field(o, "active");
    struct json_object *created;
    if (json_object_object_get_ex(o, "created", &created))
        out->created_ms = json_object_get_int64(created);
    json_object_put(o);
    return SHM_OK;
}

static size_t owner_key(const char *owner, const char *appid, char *buf)
{
    size_t owner_len = strlen(owner);
    memcpy(buf, owner, owner_len + 1);
    memcpy(buf + owner_len + 1, appid, SHM_APPID_LEN);
    return owner_len + 1 + SHM_APPID_LEN;
}

int shm_app_put(struct shm_store *store, const struct shm_app *app)
{
    if (strlen(app->appid) != SHM_APPID_LEN || app->owner[0] == '\0')
        return SHM_ERROR;
    char *text = shm_app_encode(app);
    MDB_txn *txn = store_batch_txn(store);
    if (text == NULL || txn == NULL) {
        free(text);
        return SHM_ERROR;
    }
    char index[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN];
    MDB_val key = { SHM_APPID_LEN, (void *)app->appid }, value = { strlen(text), text };
    MDB_val ikey = { owner_key(app->owner, app->appid, index), index }, empty = { 0, "" };
    int rc = mdb_put(txn, store->apps, &key, &value, 0);
    if (rc == 0)
        rc = mdb_put(txn, store->apps_by_owner, &ikey, &empty, 0);
    int result = rc == 0 ? SHM_OK : store_batch_fail(store, rc, "app");
    if (result == SHM_OK && store->outbox_on)
        result = shm_outbox_add(store, SHM_OUTBOX_PUT, SHM_BUCKET_APPS, app->appid, text,
                                strlen(text), NULL);
    free(text);
    return result;
}

int shm_app_get(struct shm_store *store, const char *appid, struct shm_app *out)
{
    if (strlen(appid) != SHM_APPID_LEN)
        return SHM_NOT_FOUND;
    MDB_val key = { SHM_APPID_LEN, (void *)appid }, value;
    MDB_txn *txn;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_get(txn, store->apps, &key, &value);
    int result = rc == 0 ? app_decode(appid, &value, out) : store_result(rc);
    store_read_end(store, txn);
    return result;
}

int shm_app_delete(struct shm_store *store, const char *appid)
{
    struct shm_app app;
    int rc = shm_app_get(store, appid, &app);
    if (rc != SHM_OK)
        return rc;
    if ((rc = shm_grant_revoke_app(store, appid)) != SHM_OK)
        return rc;
    MDB_txn *txn = store_batch_txn(store);
    if (txn == NULL)
        return SHM_ERROR;
    char index[SHM_EMAIL_MAX + 1 + SHM_APPID_LEN];
    MDB_val key = { SHM_APPID_LEN, (void *)appid };
    MDB_val ikey = { owner_key(app.owner, appid, index), index };
    if ((rc = mdb_del(txn, store->apps, &key, NULL)) == 0)
        rc = mdb_del(txn, store->apps_by_owner, &ikey, NULL);
    if ((rc == 0 || rc == MDB_NOTFOUND) && store->outbox_on &&
        shm_outbox_add(store, SHM_OUTBOX_DELETE, SHM_BUCKET_APPS, appid, NULL, 0, NULL) != SHM_OK)
        return SHM_ERROR;
    return rc == 0 || rc == MDB_NOTFOUND ? SHM_OK : store_batch_fail(store, rc, "app delete");
}

struct owner_walk {
    struct shm_store *store;
    shm_app_cb cb;
    void *arg;
    int count;
};

static void owner_app(void *arg, const MDB_val *rest, const MDB_val *value)
{
    struct owner_walk *walk = arg;
    char appid[SHM_APPID_LEN + 1];
    struct shm_app app;
    (void)value;
    if (rest->mv_size != SHM_APPID_LEN)
        return;
    memcpy(appid, rest->mv_data, SHM_APPID_LEN);
    appid[SHM_APPID_LEN] = '\0';
    if (shm_app_get(walk->store, appid, &app) != SHM_OK)
        return;
    if (walk->cb != NULL)
        walk->cb(walk->arg, &app);
    walk->count++;
}

int shm_app_list_by_owner(struct shm_store *store, const char *owner, shm_app_cb cb, void *arg)
{
    struct owner_walk walk = { store, cb, arg, 0 };
    int rc = store_prefix_walk(store, store->apps_by_owner, owner, owner_app, &walk);
    return rc < 0 ? rc : walk.count;
}

int shm_app_list(struct shm_store *store, shm_app_cb cb, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    if (store_read_begin(store, &txn) != SHM_OK)
        return SHM_ERROR;
    int rc = mdb_cursor_open(txn, store->apps, &cursor);
    if (rc != 0) {
        store_read_end(store, txn);
        return store_result(rc);
    }
    MDB_val key, value;
    int count = 0;
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
        char appid[SHM_APPID_LEN + 1];
        struct shm_app app;
        if (key.mv_size != SHM_APPID_LEN)
            continue;
        memcpy(appid, key.mv_data, SHM_APPID_LEN);
        appid[SHM_APPID_LEN] = '\0';
        if (app_decode(appid, &value, &app) != SHM_OK)
            continue;
        if (cb != NULL)
            cb(arg, &app);
        count++;
    }
    mdb_cursor_close(cursor);
    store_read_end(store, txn);
    return rc == MDB_NOTFOUND ? count : store_result(rc);
}
