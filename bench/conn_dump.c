/* conn_dump: which worker holds each connected device, read straight from a presenced store
 * (one read transaction), so that the benchmark needs no admin request per user. Prints one
 * "device worker_pid" line per connected device.
 *   conn_dump DATA_DIR */
#include "../shm/conn.h"
#include "../shm/store.h"

#include <stdio.h>

static void device_print(void *arg, const char *email, const char *device,
                         const struct shm_conn_owner *owner)
{
    (void)arg;
    (void)email;
    printf("%s %d\n", device, owner->worker_pid);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: conn_dump DATA_DIR\n");
        return 2;
    }
    char err[512];
    struct shm_store *store;
    struct shm_store_options opt = { argv[1], 256LL << 20, 16LL << 30, false };
    if (shm_store_open(&store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "conn_dump: %s\n", err);
        return 1;
    }
    int count = shm_conn_walk_all(store, device_print, NULL);
    shm_store_close(store);
    if (count < 0) {
        fprintf(stderr, "conn_dump: the store cannot be read\n");
        return 1;
    }
    return 0;
}
