/* engine_uv: cnats's libuv adapter (Debian ships it as a header of function definitions,
 * nats/adapters/libuv.h), compiled once here. */
#include "engine_uv.h"

#include <nats/adapters/libuv.h>

natsStatus engine_uv_options(natsOptions *opts, uv_loop_t *loop)
{
    natsLibuv_Init();
    return natsOptions_SetEventLoop(opts, loop, natsLibuv_Attach, natsLibuv_Read, natsLibuv_Write,
                                    natsLibuv_Detach);
}

void engine_uv_thread_init(uv_loop_t *loop)
{
    natsLibuv_Init();
    natsLibuv_SetThreadLocalLoop(loop);
}
