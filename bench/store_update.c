/* store_update: status updates through the store alone (shm_presence_device_status), for
 * counting the store's instructions per update under callgrind (bench/instructions.py):
 *
 *   store_update DIR USERS DEVICES_PER_USER UPDATES PER_COMMIT
 *
 * binds USERS x DEVICES_PER_USER devices online in a new store in DIR (which must not exist),
 * then flips each device in turn between unavailable and online, UPDATES in all, committing
 * every PER_COMMIT updates (1: each its own commit, as one update in flight at a time is; more:
 * as a worker's loop turn batches them at saturation). Prints the updates made and how many
 * changed the user's published status. */
#include "../shm/conn.h"
#include "../shm/presence.h"
#include "../shm/store.h"

#include <stdio.h>
#include <stdlib.h>

static int bind_all(struct shm_store *store, int users, int per_user,
                    const struct shm_presence_policy *policy)
{
    char email[64], device[32];
    uint64_t conn_id = 1;
    for (int u = 0; u < users; u++)
        for (int d = 0; d < per_user; d++) {
            snprintf(email, sizeof email, "user%d@bench.example", u);
            snprintf(device, sizeof device, "device%d", d);
            struct shm_conn_owner me = { 100, conn_id++, SHM_STATUS_ONLINE, 1000 }, previous;
            int had;
            if (shm_conn_claim(store, email, device, &me, &previous, &had) != SHM_OK ||
                shm_presence_device_bound(store, email, device, policy, 1000, NULL, NULL) != SHM_OK)
                return -1;
        }
    return shm_batch_commit(store) == SHM_OK ? 0 : -1;
}

/* Update i: device i mod the devices, unavailable on odd rounds over them, online on even. */
static int update(struct shm_store *store, int users, int per_user, int i,
                  const struct shm_presence_policy *policy, long *changed)
{
    int devices = users * per_user, n = i % devices;
    char email[64], device[32];
    snprintf(email, sizeof email, "user%d@bench.example", n / per_user);
    snprintf(device, sizeof device, "device%d", n % per_user);
    uint8_t status = (i / devices) % 2 == 0 ? SHM_STATUS_UNAVAILABLE : SHM_STATUS_ONLINE;
    struct shm_presence before, after;
    if (shm_presence_device_status(store, email, device, 100, (uint64_t)n + 1, status, policy,
                                   2000 + i, &before, &after) != SHM_OK)
        return -1;
    *changed += before.status != after.status;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: store_update DIR USERS DEVICES_PER_USER UPDATES PER_COMMIT\n");
        return 2;
    }
    int users = atoi(argv[2]), per_user = atoi(argv[3]), updates = atoi(argv[4]),
        per_commit = atoi(argv[5]);
    if (users < 1 || per_user < 1 || updates < 1 || per_commit < 1) {
        fprintf(stderr, "store_update: the counts must be positive\n");
        return 2;
    }
    struct shm_store *store = NULL;
    char err[256];
    struct shm_store_options opt = { argv[1], 64LL << 20, 64LL << 20, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != SHM_OK) {
        fprintf(stderr, "store_update: %s\n", err);
        return 1;
    }
    const struct shm_presence_policy policy = { 0, 86400000 };
    long changed = 0;
    int rc = bind_all(store, users, per_user, &policy);
    for (int i = 0; rc == 0 && i < updates; i++) {
        rc = update(store, users, per_user, i, &policy, &changed);
        if (rc == 0 && (i + 1) % per_commit == 0 && shm_batch_commit(store) != SHM_OK)
            rc = -1;
    }
    if (rc == 0 && shm_batch_commit(store) != SHM_OK)
        rc = -1;
    shm_store_close(store);
    if (rc != 0) {
        fprintf(stderr, "store_update: an update failed\n");
        return 1;
    }
    printf("updates %d changed %ld\n", updates, changed);
    return 0;
}
