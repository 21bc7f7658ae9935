/* clock: wall-clock and monotonic milliseconds. */
#ifndef PRESENCED_CLOCK_H
#define PRESENCED_CLOCK_H

#include <stdint.h>

int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);

#endif
