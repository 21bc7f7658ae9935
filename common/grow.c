/* grow: doubling the capacity of a heap array before one more element is appended. */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>

int grow_for(void **items, size_t *cap, size_t count, size_t size, size_t first_cap)
{
    if (count < *cap)
        return 0;
    size_t grown_cap = *cap ? *cap * 2 : first_cap;
    if (grown_cap > SIZE_MAX / size)
        return -1;
    void *grown = realloc(*items, grown_cap * size);
    if (grown == NULL)
        return -1;
    *items = grown;
    *cap = grown_cap;
    return 0;
}
