/* Unit tests of worker/keepalive: when pings go out and silent peers are dropped, on a real
 * libuv loop; timing through keepalive_run at chosen times, and the timer on the loop. */
#include "tap.h"

#include "../../worker/session/keepalive.h"

#include <stdint.h>

struct peer {
    struct keepalive_link link;
    int pings, drops;
};

static struct peer *peer_of(struct keepalive_link *link)
{
    return (struct peer *)link; /* link is the first member */
}

static void on_ping(struct keepalive_link *link, void *arg)
{
    peer_of(link)->pings++;
    (*(int *)arg)++;
}

static void on_drop(struct keepalive_link *link, void *arg)
{
    peer_of(link)->drops++;
    (*(int *)arg)++;
}

static void test_schedule(uv_loop_t *loop)
{
    struct keepalive ka;
    int events = 0;
    ok(keepalive_init(&ka, loop, 30000, 10000, on_ping, on_drop, &events) == 0, "init");
    int64_t t0 = (int64_t)uv_now(loop);
    struct peer a = { 0 }, b = { 0 }, c = { 0 };
    /* Lanes 0, 1 and 2: due 30 s, 30.937 s and 31.875 s after they were heard. */
    keepalive_heard(&ka, &a.link);
    keepalive_heard(&ka, &b.link);
    keepalive_heard(&ka, &c.link);
    is_int(keepalive_run(&ka, t0 + 1000), t0 + 30000, "nothing due; next is the first ping");
    is_int(events, 0, "no work before the interval");
    is_int(keepalive_run(&ka, t0 + 29990), t0 + 30937,
           "a ping due within 10 ms goes out; next is the next lane's");
    ok(a.pings == 1 && b.pings == 0, "only the first lane's peer so far");
    keepalive_run(&ka, t0 + 31875);
    ok(a.pings == 1 && b.pings == 1 && c.pings == 1, "all three pinged once, spread over lanes");

    /* b answers (a pong or any message) at loop time t0: its next ping is due at t0 + 30.937 s */
    keepalive_heard(&ka, &b.link);
    keepalive_forget(&c.link); /* c closed */
    keepalive_forget(&c.link);
    ok(!list_linked(&c.link.link), "forgetting twice is harmless");
    is_int(keepalive_run(&ka, t0 + 39989), t0 + 39990, "a is not dropped a millisecond early");
    is_int(a.drops, 0, "a still waits");
    is_int(b.pings, 2, "b's interval restarted when it answered");
    keepalive_run(&ka, t0 + 39990);
    ok(a.drops == 1 && b.drops == 0 && c.drops == 0, "only the silent peer is dropped");
    ok(!list_linked(&a.link.link), "a dropped peer is in no list");
    is_int(keepalive_run(&ka, t0 + 40000), t0 + 39989 + 10000, "next is b's second deadline");
    keepalive_forget(&b.link);
    is_int(keepalive_run(&ka, t0 + 40000), -1, "nothing kept: nothing due");
    keepalive_close(&ka);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* Connections made together fall due together: their pings are spread over loop turns. */
static void test_bounded_run(uv_loop_t *loop)
{
    /* Heard together, the 200 fall in 8 lanes: their pings are due over a quarter interval. */
    struct keepalive ka;
    int events = 0;
    keepalive_init(&ka, loop, 1000, 1000, on_ping, on_drop, &events);
    static struct peer many[200];
    for (int i = 0; i < 200; i++)
        keepalive_heard(&ka, &many[i].link);
    int64_t due = (int64_t)uv_now(loop) + 1300; /* every lane's share is under 250 ms */
    int64_t next = keepalive_run(&ka, due);
    ok(events > 0 && events < 200, "one run pings some of 200 due peers (%d)", events);
    ok(next <= due, "and asks to run again at once");
    int runs = 1;
    while (events < 200 && runs < 200) {
        keepalive_run(&ka, due);
        runs++;
    }
    is_int(events, 200, "every peer is pinged after %d runs", runs);
    for (int i = 0; i < 200; i++)
        keepalive_forget(&many[i].link);
    keepalive_close(&ka);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_timer(uv_loop_t *loop)
{
    struct keepalive ka;
    int events = 0;
    keepalive_init(&ka, loop, 20, 20, on_ping, on_drop, &events);
    struct peer p = { 0 };
    keepalive_heard(&ka, &p.link);
    uint64_t started = uv_now(loop);
    while (p.drops == 0 && uv_now(loop) - started < 5000)
        uv_run(loop, UV_RUN_ONCE);
    ok(p.pings == 1 && p.drops == 1, "the loop's timer pings, then drops a silent peer");
    ok(!uv_is_active((uv_handle_t *)&ka.timer), "the timer stops when nothing is kept");
    keepalive_close(&ka);
    uv_run(loop, UV_RUN_DEFAULT);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_schedule(&loop);
    test_bounded_run(&loop);
    test_timer(&loop);
    ok(uv_loop_close(&loop) == 0, "every handle closed");
    return tap_done();
}
