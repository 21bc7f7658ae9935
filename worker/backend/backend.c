/* backend: which implementation of backend.h a worker runs, and the way in from it to the
 * worker's connections. */
#include "backend.h"

#include "../session/session.h"

const struct backend_ops *backend_pick(const struct worker *w)
{
    return w->cfg->cluster != NULL ? backend_cluster() : &backend_local;
}

void backend_inbound(struct worker *w, uint64_t conn_id, const struct conn_mail *mail)
{
    session_mail(w, conn_id, mail);
}
