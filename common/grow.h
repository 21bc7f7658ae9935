/* grow: doubling the capacity of a heap array before one more element is appended. */
#ifndef PRESENCED_GROW_H
#define PRESENCED_GROW_H

#include <stddef.h>

/* Makes room for element number count (0-based) in *items of *cap elements of size bytes,
 * starting at first_cap. Returns 0, or -1 with *items untouched when out of memory. */
int grow_for(void **items, size_t *cap, size_t count, size_t size, size_t first_cap);

#endif
