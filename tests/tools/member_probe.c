/* member_probe: drives cluster/member.c (a worker's operations on the cluster's state) against
 * a running node, as one more worker of it — for the integration tests of the claim's
 * compare-and-set, the inbox and the notification queue before and beside real devices. One
 * command per run; each answer and each message its inbox receives (a DELIVER, an EARLY copy,
 * a CLOSE) is a JSON line on stdout:
 *   member_probe CONFIG claim EMAIL DEVICE COUNT HOLD_MS   COUNT claims at once, conns 1..COUNT;
 *                                                          held HOLD_MS, then released (kept in
 *                                                          the record when HOLD_MS is negative)
 *   member_probe CONFIG notify EMAIL JSON
 *   member_probe CONFIG notify-loop EMAIL COUNT             COUNT notifications one after the
 *                                                          other, each after the last's answer
 *   member_probe CONFIG pending EMAIL
 * It exits 0 once done, 1 when the node does not serve or the engine cannot be reached. */
#include "../../cluster/member.h"

#include "../../common/clock.h"
#include "../../common/config.h"
#include "../../common/log.h"
#include "../../shm/conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct claim_arg;

struct probe {
    uv_loop_t loop;
    struct config cfg;
    struct shm_store *store;
    struct cl_member *member;
    char **argv;
    int argc;
    int rc;
    int waiting;
    uint64_t *won;
    size_t won_count;
    struct claim_arg *claims;
    int loop_done;
    uv_timer_t start, hold;
};

static void finish(struct probe *p)
{
    uv_timer_stop(&p->start);
    uv_close((uv_handle_t *)&p->start, NULL);
    uv_close((uv_handle_t *)&p->hold, NULL);
    cl_member_close(p->member);
}

static void on_close(void *arg, uint64_t conn, int number)
{
    (void)arg;
    printf("{\"close\":%" PRIu64 ",\"errno\":%d}\n", conn, number);
    fflush(stdout);
}

/* A DELIVER, or the EARLY copy sent as the publish started ({"early":conn,"json":…}). */
static void on_deliver(void *arg, const struct cl_inbox_msg *m)
{
    (void)arg;
    if (m->kind == CL_INBOX_EARLY)
        printf("{\"early\":%" PRIu64 ",\"json\":%.*s}\n", m->conn, (int)m->json_len, m->json);
    else
        printf("{\"deliver\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"json\":%.*s}\n", m->conn, m->seq,
               (int)m->json_len, m->json);
    fflush(stdout);
}

static void resync_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    (void)arg;
    printf("{\"deliver\":0,\"seq\":%" PRIu64 ",\"json\":%.*s,\"resync\":true}\n",
           cl_notif_key_seq(key), (int)len, json);
    fflush(stdout);
}

static void resync_done(void *arg, int number, bool more, uint64_t last)
{
    (void)arg;
    (void)number;
    (void)more;
    (void)last;
}

/* The engine connection came back: what was delivered meanwhile is read from the queue. */
static void on_resync(void *arg)
{
    struct probe *p = arg;
    if (strcmp(p->argv[2], "claim") == 0)
        cl_pending(p->member, p->argv[3], 0, SIZE_MAX, resync_add, resync_done, p);
}

static void released(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    /* The releases are under way: give them the time they take, then go. */
    if (p->waiting-- > 0) {
        uv_timer_start(&p->hold, released, 100, 0);
        return;
    }
    finish(p);
}

static void held(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    for (size_t i = 0; i < p->won_count && atoll(p->argv[6]) >= 0; i++)
        cl_release(p->member, p->argv[3], p->argv[4], p->won[i]);
    p->waiting = 10;
    uv_timer_start(&p->hold, released, 100, 0);
}

struct claim_arg {
    struct probe *p;
    uint64_t conn;
};

static void claimed(void *arg, const struct cl_claim_result *r)
{
    struct claim_arg *c = arg;
    struct probe *p = c->p;
    printf("{\"claim\":%" PRIu64 ",\"number\":%d,\"had_previous\":%s,\"ms\":%" PRId64 "}\n",
           c->conn, r->number, r->had_previous ? "true" : "false", clock_wall_ms());
    fflush(stdout);
    if (--p->waiting == 0)
        uv_timer_start(&p->hold, held, (uint64_t)llabs(atoll(p->argv[6])), 0);
}

static void loop_next(struct probe *p);

static void loop_notified(void *arg, const struct cl_notify_result *r)
{
    struct probe *p = arg;
    printf("{\"notify\":%d,\"seq\":%" PRIu64 ",\"i\":%d,\"ms\":%" PRId64 "}\n", r->number, r->seq,
           p->loop_done, clock_wall_ms());
    fflush(stdout);
    p->loop_done++;
    loop_next(p);
}

static void loop_next(struct probe *p)
{
    if (p->loop_done >= atoi(p->argv[4])) {
        p->waiting = 5;
        uv_timer_start(&p->hold, released, 100, 0);
        return;
    }
    char json[64];
    snprintf(json, sizeof json, "{\"i\":%d}", p->loop_done);
    if (cl_notify(p->member, p->argv[3], json, strlen(json), clock_wall_ms() + 3600000,
                  loop_notified, p) == NULL) {
        struct cl_notify_result r = { .number = 61 };
        loop_notified(p, &r); /* not serving: counted as refused, and on */
    }
}

static void notified(void *arg, const struct cl_notify_result *r)
{
    struct probe *p = arg;
    printf("{\"notify\":%d,\"seq\":%" PRIu64 ",\"dropped\":%zu}\n", r->number, r->seq, r->dropped);
    fflush(stdout);
    /* The deliveries follow the answer: let them go out. */
    p->waiting = 5;
    uv_timer_start(&p->hold, released, 100, 0);
}

static void page_add(void *arg, const struct shm_notif_key *key, const char *json, size_t len)
{
    (void)arg;
    printf("{\"pending\":%" PRIu64 ",\"json\":%.*s}\n", cl_notif_key_seq(key), (int)len, json);
}

static void page_done(void *arg, int number, bool more, uint64_t last)
{
    struct probe *p = arg;
    printf("{\"page\":%d,\"more\":%s,\"last\":%" PRIu64 "}\n", number, more ? "true" : "false",
           last);
    fflush(stdout);
    finish(p);
}

static void start(uv_timer_t *timer)
{
    struct probe *p = timer->data;
    if (!cl_member_serving(p->member) || !cl_member_connected(p->member)) {
        if (uv_now(&p->loop) > 20000) {
            fprintf(stderr, "the node does not serve\n");
            p->rc = 1;
            finish(p);
        }
        return;
    }
    uv_timer_stop(&p->start);
    const char *cmd = p->argv[2];
    if (strcmp(cmd, "claim") == 0 && p->argc == 7) {
        int count = atoi(p->argv[5]);
        p->won = calloc((size_t)count, sizeof *p->won);
        p->claims = calloc((size_t)count, sizeof *p->claims);
        p->waiting = count;
        for (int i = 1; i <= count; i++) {
            p->won[p->won_count++] = (uint64_t)i;
            p->claims[i - 1] = (struct claim_arg){ p, (uint64_t)i };
            if (cl_claim(p->member, p->argv[3], p->argv[4], (uint64_t)i, SHM_STATUS_ONLINE, 10,
                         claimed, &p->claims[i - 1]) == NULL) {
                printf("{\"claim\":%d,\"number\":61,\"had_previous\":false}\n", i);
                p->waiting--;
            }
        }
    } else if (strcmp(cmd, "notify") == 0 && p->argc == 5) {
        if (cl_notify(p->member, p->argv[3], p->argv[4], strlen(p->argv[4]),
                      clock_wall_ms() + 3600000, notified, p) == NULL) {
            p->rc = 1;
            finish(p);
        }
    } else if (strcmp(cmd, "notify-loop") == 0 && p->argc == 5) {
        loop_next(p);
    } else if (strcmp(cmd, "pending") == 0 && p->argc == 4) {
        if (cl_pending(p->member, p->argv[3], 0, 1 << 20, page_add, page_done, p) == NULL) {
            p->rc = 1;
            finish(p);
        }
    } else {
        fprintf(stderr, "usage: see tests/tools/member_probe.c\n");
        p->rc = 2;
        finish(p);
    }
}

int main(int argc, char **argv)
{
    static struct probe p;
    p.argv = argv;
    p.argc = argc;
    char err[512];
    if (argc < 3 || config_defaults(&p.cfg) != 0 ||
        config_load(&p.cfg, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", argc < 3 ? "usage: member_probe CONFIG COMMAND ..." : err);
        return 2;
    }
    struct shm_store_options opt = { .dir = p.cfg.data_dir,
                                     .map_size = p.cfg.map_size,
                                     .max_map_size = p.cfg.max_map_size };
    if (shm_store_open(&p.store, &opt, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uv_loop_init(&p.loop);
    struct cl_member_options mo = {
        .loop = &p.loop,
        .cfg = &p.cfg,
        .store = p.store,
        .pid = (uint32_t)getpid(),
        .on = { .close = on_close, .deliver = on_deliver, .resync = on_resync, .arg = &p }
    };
    if (cl_member_open(&p.member, &mo, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uv_timer_init(&p.loop, &p.start);
    uv_timer_init(&p.loop, &p.hold);
    p.start.data = p.hold.data = &p;
    uv_timer_start(&p.start, start, 50, 50);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    cl_member_library_end();
    shm_store_close(p.store);
    config_free(&p.cfg);
    free(p.won);
    free(p.claims);
    return p.rc;
}
