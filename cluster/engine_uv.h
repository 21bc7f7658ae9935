/* engine_uv: cnats's libuv adapter (Debian ships it as a header of function definitions,
 * nats/adapters/libuv.h), compiled once here. */
#ifndef PRESENCED_CLUSTER_ENGINE_UV_H
#define PRESENCED_CLUSTER_ENGINE_UV_H

#include <nats/nats.h>
#include <uv.h>

/* Makes connections of opts run their I/O on loop. */
natsStatus engine_uv_options(natsOptions *opts, uv_loop_t *loop);
/* Tells the adapter that loop runs on the calling thread (before the first connect). */
void engine_uv_thread_init(uv_loop_t *loop);

#endif
