/* member_resend: the inbox messages (DELIVER, CLOSE) a worker sent in the last seconds, sent
 * again once its engine connection came back. A core message written to a server that then
 * dies (kill -9, or frozen and left) is lost with it: cnats keeps for the reconnect only what
 * it had not written yet, and a silent server is only left after two pings unanswered (2 s).
 * So each message is kept CL_RESEND_MS, and after a reconnect every one sent from CL_RESEND_MS
 * before the disconnect on is published again; a receiving worker drops a DELIVER it already
 * gave by its queue sequence, and a CLOSE of a connection that is gone does nothing. Bounded:
 * at most CL_RESEND_MAX_BYTES kept (the oldest go first; what is lost then is still queued,
 * for the device's next connect). */
#include "member_internal.h"

#include "../common/clock.h"
#include "../common/log.h"

#include <stdlib.h>
#include <string.h>

struct sent_msg {
    struct list_link link;
    int64_t sent_mono;
    size_t subject_len, len; /* data: subject, NUL, message */
    char data[];
};

static void sent_drop(struct cl_member *m, struct sent_msg *s)
{
    list_remove(&s->link);
    m->resend_bytes -= s->subject_len + s->len;
    free(s);
}

/* Connected: what is older than CL_RESEND_MS cannot be lost any more (written and read, or the
 * disconnect would have been seen). Disconnected: kept for the reconnect, within the cap. */
static void sent_prune(struct cl_member *m, int64_t now)
{
    bool connected = engine_connected(m->engine);
    struct list_link *pos, *tmp;
    LIST_EACH_SAFE(pos, tmp, &m->resend) {
        struct sent_msg *s = LIST_ENTRY(pos, struct sent_msg, link);
        bool old = connected && now - s->sent_mono > CL_RESEND_MS;
        if (!old && m->resend_bytes <= CL_RESEND_MAX_BYTES)
            break;
        sent_drop(m, s);
    }
}

int member_inbox_send(struct cl_member *m, const char *subject, const char *msg, size_t len)
{
    int rc = engine_publish(m->engine, subject, NULL, NULL, 0, msg, len);
    int64_t now = clock_mono_ms();
    size_t subject_len = strlen(subject);
    struct sent_msg *s = malloc(sizeof *s + subject_len + 1 + len);
    if (s != NULL) {
        s->link = (struct list_link){ NULL, NULL };
        s->sent_mono = now;
        s->subject_len = subject_len;
        s->len = len;
        memcpy(s->data, subject, subject_len + 1);
        memcpy(s->data + subject_len + 1, msg, len);
        list_push_back(&m->resend, &s->link);
        m->resend_bytes += subject_len + len;
    }
    sent_prune(m, now);
    return rc;
}

void member_resend_disconnected(struct cl_member *m)
{
    if (m->disconnected_mono == 0)
        m->disconnected_mono = clock_mono_ms();
}

void member_resend_reconnected(struct cl_member *m)
{
    int64_t from = m->disconnected_mono - CL_RESEND_MS;
    m->disconnected_mono = 0;
    size_t again = 0;
    struct list_link *pos;
    LIST_EACH(pos, &m->resend) {
        struct sent_msg *s = LIST_ENTRY(pos, struct sent_msg, link);
        if (s->sent_mono < from)
            continue;
        if (engine_publish(m->engine, s->data, NULL, NULL, 0, s->data + s->subject_len + 1,
                           s->len) == ENGINE_OK)
            again++;
    }
    m->stats.resent += again;
    if (again > 0)
        log_info("engine: %zu inbox messages sent again after the reconnect", again);
}

void member_resend_free(struct cl_member *m)
{
    while (!list_empty(&m->resend))
        sent_drop(m, LIST_ENTRY(list_first(&m->resend), struct sent_msg, link));
}
