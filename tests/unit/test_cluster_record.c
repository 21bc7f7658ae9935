/* Unit tests: the cluster's user record — codec, claim (newest wins, max devices, dead entries
 * pruned), owner-checked status and release, incarnation release, effective presence. */
#include "tap.h"

#include "../../cluster/record.h"

#include <stdint.h>

static struct cl_entry entry(const char *device, const char *node, uint64_t epoch, uint32_t pid,
                             uint64_t conn, uint8_t status, int64_t at)
{
    struct cl_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.device, sizeof e.device, "%s", device);
    snprintf(e.owner.node, sizeof e.owner.node, "%s", node);
    e.owner.epoch = epoch;
    e.owner.pid = pid;
    e.owner.conn = conn;
    e.status = status;
    e.since_ms = e.claimed_ms = at;
    return e;
}

/* Liveness for the tests: node "dead" is dead; epoch 1 of "n2" is dead; pid 666 is dead. */
static bool test_live(void *arg, const struct cl_owner *o)
{
    (void)arg;
    if (strcmp(o->node, "dead") == 0 || o->pid == 666)
        return false;
    return !(strcmp(o->node, "n2") == 0 && o->epoch == 1);
}

static void test_codec(void)
{
    struct cl_record rec, back;
    cl_record_init(&rec, "alice@example.com");
    struct cl_entry e1 = entry("phone", "n1", 3, 100, 7, SHM_STATUS_ONLINE, 1000);
    struct cl_entry e2 = entry("laptop", "node-22", 1ull << 40, 4000000000u, UINT64_MAX,
                               SHM_STATUS_UNAVAILABLE, 2000);
    struct cl_entry prev;
    bool had;
    is_int(cl_record_claim(&rec, &e1, 10, NULL, NULL, &prev, &had), CL_REC_OK, "claim phone");
    is_int(cl_record_claim(&rec, &e2, 10, NULL, NULL, &prev, &had), CL_REC_OK, "claim laptop");
    static unsigned char buf[CL_RECORD_MAX];
    long len = cl_record_encode(&rec, buf, sizeof buf);
    ok(len > 0, "encoded in %ld bytes", len);
    const char *why = NULL;
    is_int(cl_record_decode(&back, buf, (size_t)len, &why), 0, "decodes");
    is_str(back.email, "alice@example.com", "e-mail kept");
    is_int(back.count, 2, "two entries");
    is_str(back.entries[1].owner.node, "node-22", "node kept");
    ok(back.entries[1].owner.epoch == (1ull << 40) && back.entries[1].owner.pid == 4000000000u &&
           back.entries[1].owner.conn == UINT64_MAX,
       "64-bit epoch, 32-bit pid, 64-bit connection id kept");
    is_int(back.agg_status, SHM_STATUS_ONLINE, "aggregate hint kept");
    cl_record_free(&back);

    for (long cut = 0; cut < len; cut++)
        if (cl_record_decode(&back, buf, (size_t)cut, &why) == 0) {
            ok(0, "a record cut at %ld bytes is refused", cut);
            cl_record_free(&back);
            break;
        }
    ok(1, "every truncation refused");
    buf[len] = 0;
    is_int(cl_record_decode(&back, buf, (size_t)len + 1, &why), -1, "trailing byte refused");
    is_str(why, "trailing bytes", "and says why");
    unsigned char bad[CL_RECORD_MAX];
    memcpy(bad, buf, (size_t)len);
    bad[0] = 9;
    is_int(cl_record_decode(&back, bad, (size_t)len, &why), -1, "unknown version refused");
    struct cl_record twice;
    cl_record_init(&twice, "a@b");
    struct cl_entry d1 = entry("same", "n1", 1, 1, 1, 0, 1), d2 = entry("same", "n1", 1, 1, 2, 0, 1);
    twice.entries = calloc(2, sizeof *twice.entries);
    twice.entries[0] = d1;
    twice.entries[1] = d2;
    twice.count = twice.cap = 2;
    len = cl_record_encode(&twice, bad, sizeof bad);
    is_int(cl_record_decode(&back, bad, (size_t)len, &why), -1, "one device twice refused");
    is_str(why, "one device twice", "and says why");
    cl_record_free(&twice);
    struct cl_record badnode;
    cl_record_init(&badnode, "a@b");
    struct cl_entry bn = entry("d", "N1", 1, 1, 1, 0, 1);
    cl_record_claim(&badnode, &bn, 10, NULL, NULL, &prev, &had);
    len = cl_record_encode(&badnode, bad, sizeof bad);
    is_int(cl_record_decode(&back, bad, (size_t)len, &why), -1, "a node name node_name refuses");
    cl_record_free(&badnode);
    cl_record_free(&rec);
}

static void test_claim(void)
{
    struct cl_record rec;
    cl_record_init(&rec, "bob@example.com");
    struct cl_entry prev;
    bool had;
    struct cl_entry a = entry("phone", "n1", 1, 10, 1, SHM_STATUS_ONLINE, 100);
    struct cl_entry b = entry("phone", "n3", 2, 30, 9, SHM_STATUS_UNAVAILABLE, 200);
    is_int(cl_record_claim(&rec, &a, 2, test_live, NULL, &prev, &had), CL_REC_OK, "first claim");
    ok(!had, "no previous owner");
    is_int(cl_record_claim(&rec, &b, 2, test_live, NULL, &prev, &had), CL_REC_OK,
           "a second connection for the same device takes it");
    ok(had && cl_owner_same(&prev.owner, &a.owner), "and names the one it superseded");
    is_int(rec.count, 1, "one entry per device");
    is_int(rec.agg_status, SHM_STATUS_UNAVAILABLE, "aggregate is the newest's");
    struct cl_entry c = entry("tablet", "n2", 2, 20, 3, SHM_STATUS_OFFLINE, 300);
    struct cl_entry d = entry("watch", "n1", 1, 10, 4, SHM_STATUS_ONLINE, 400);
    is_int(cl_record_claim(&rec, &c, 2, test_live, NULL, &prev, &had), CL_REC_OK, "second device");
    is_int(cl_record_claim(&rec, &d, 2, test_live, NULL, &prev, &had), CL_REC_TOO_MANY,
           "a third device over max_devices_per_user 2 is refused (51)");
    is_int(rec.count, 2, "and the record is unchanged");
    /* The phone's holder (n3) dies: its entry no longer counts, and a claim prunes it. */
    struct cl_entry dead_entry = entry("old", "dead", 5, 50, 5, SHM_STATUS_ONLINE, 50);
    struct cl_record rec2;
    cl_record_init(&rec2, "carol@example.com");
    cl_record_claim(&rec2, &dead_entry, 2, NULL, NULL, &prev, &had);
    struct cl_entry ghost = entry("phone", "n2", 1, 20, 6, SHM_STATUS_ONLINE, 60);
    cl_record_claim(&rec2, &ghost, 2, NULL, NULL, &prev, &had);
    is_int(rec2.count, 2, "two entries of dead incarnations");
    struct cl_entry fresh1 = entry("phone", "n1", 1, 10, 7, SHM_STATUS_ONLINE, 70);
    struct cl_entry fresh2 = entry("tablet", "n1", 1, 10, 8, SHM_STATUS_ONLINE, 80);
    is_int(cl_record_claim(&rec2, &fresh1, 2, test_live, NULL, &prev, &had), CL_REC_OK,
           "a claim beside dead entries");
    ok(!had, "a dead holder of the device is no previous owner to close");
    is_int(cl_record_claim(&rec2, &fresh2, 2, test_live, NULL, &prev, &had), CL_REC_OK,
           "dead entries do not count against max_devices_per_user");
    is_int(rec2.count, 2, "they were pruned");
    cl_record_free(&rec2);
    cl_record_free(&rec);
}

static void test_owner_checks(void)
{
    struct cl_record rec;
    cl_record_init(&rec, "dan@example.com");
    struct cl_entry prev;
    bool had;
    struct cl_entry a = entry("phone", "n1", 1, 10, 1, SHM_STATUS_ONLINE, 100);
    struct cl_entry b = entry("phone", "n2", 2, 20, 2, SHM_STATUS_ONLINE, 200);
    cl_record_claim(&rec, &a, 10, NULL, NULL, &prev, &had);
    is_int(cl_record_set_status(&rec, "phone", &a.owner, SHM_STATUS_ONLINE, 150), CL_REC_UNCHANGED,
           "the same status writes nothing");
    is_int(cl_record_set_status(&rec, "phone", &a.owner, SHM_STATUS_UNAVAILABLE, 160), CL_REC_OK,
           "the owner changes its status");
    is_int(rec.agg_status, SHM_STATUS_UNAVAILABLE, "aggregate follows");
    ok(rec.agg_since_ms == 160, "since the change");
    cl_record_claim(&rec, &b, 10, NULL, NULL, &prev, &had);
    is_int(cl_record_set_status(&rec, "phone", &a.owner, SHM_STATUS_OFFLINE, 250),
           CL_REC_NOT_OWNER, "a superseded connection's status is refused (52)");
    is_int(cl_record_release(&rec, "phone", &a.owner, 260), CL_REC_NOT_OWNER,
           "a superseded connection releases nothing");
    is_int(rec.count, 1, "the newer entry stays");
    struct cl_owner same_conn_other_epoch = b.owner;
    same_conn_other_epoch.epoch = 1;
    is_int(cl_record_release(&rec, "phone", &same_conn_other_epoch, 270), CL_REC_NOT_OWNER,
           "another epoch is another owner");
    is_int(cl_record_release(&rec, "phone", &b.owner, 280), CL_REC_OK, "the owner releases");
    is_int(rec.count, 0, "no device left");
    is_int(rec.agg_status, SHM_STATUS_OFFLINE, "offline");
    cl_record_free(&rec);
}

static void test_incarnations_and_effective(void)
{
    struct cl_record rec;
    cl_record_init(&rec, "eve@example.com");
    struct cl_entry prev;
    bool had;
    struct cl_entry e[] = {
        entry("a", "n1", 1, 10, 1, SHM_STATUS_UNAVAILABLE, 100),
        entry("b", "n2", 1, 20, 2, SHM_STATUS_ONLINE, 200), /* n2 epoch 1: dead */
        entry("c", "n2", 2, 20, 3, SHM_STATUS_OFFLINE, 300),
        entry("d", "n1", 1, 666, 4, SHM_STATUS_ONLINE, 400), /* pid 666: dead */
        entry("e", "n1", 1, 11, 5, SHM_STATUS_UNAVAILABLE, 500),
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++)
        cl_record_claim(&rec, &e[i], 10, NULL, NULL, &prev, &had);
    is_int(rec.agg_status, SHM_STATUS_ONLINE, "the written aggregate counts every entry");
    int64_t since;
    size_t alive;
    is_int(cl_record_effective(&rec, test_live, NULL, &since, &alive), SHM_STATUS_UNAVAILABLE,
           "effective presence skips dead incarnations and dead workers");
    is_int(alive, 3, "three live entries");
    ok(since == 500, "since the latest live entry holding that status (%lld)", (long long)since);
    is_int(cl_record_effective(&rec, NULL, NULL, &since, NULL), SHM_STATUS_ONLINE,
           "without liveness, every entry counts");
    ok(since == rec.agg_since_ms, "since the written aggregate's time");
    is_int(cl_record_release_incarnation(&rec, "n1", 1, 666, 600), 1, "one dead worker's entry");
    is_int(cl_record_release_incarnation(&rec, "n2", 1, 0, 700), 1, "a dead epoch's entries");
    is_int(rec.count, 3, "three left");
    is_int(rec.agg_status, SHM_STATUS_UNAVAILABLE, "aggregate recomputed");
    ok(cl_record_find(&rec, "c") != NULL, "the next epoch's entry stays");
    is_int(cl_record_release_incarnation(&rec, "n1", 1, 0, 800), 2, "the whole incarnation");
    is_int(cl_record_effective(&rec, test_live, NULL, &since, &alive), SHM_STATUS_OFFLINE,
           "offline with only an offline device");
    cl_record_free(&rec);
    struct cl_record none;
    cl_record_init(&none, "x@y");
    is_int(cl_record_effective(&none, test_live, NULL, &since, &alive), SHM_STATUS_OFFLINE,
           "no device: offline");
    ok(since == 0 && alive == 0, "with no since");
}

static void test_keys(void)
{
    char uk[CL_USER_KEY_LEN + 1];
    cl_user_key("alice@example.com", uk);
    is_int(strlen(uk), 32, "user key: 32 characters");
    ok(strspn(uk, "0123456789abcdef") == 32, "lowercase hex");
    /* sha256("alice@example.com") starts ff8d9819fc0e12bf0d24892e45987e24 */
    is_str(uk, "ff8d9819fc0e12bf0d24892e45987e24", "the first 16 bytes of SHA-256");
    is_int(cl_user_shard(uk, 12), 0xff % 12, "shard: first byte modulo shards");
    is_int(cl_user_shard(uk, 1), 0, "one shard");
}

int main(void)
{
    test_codec();
    test_claim();
    test_owner_checks();
    test_incarnations_and_effective();
    test_keys();
    return tap_done();
}
