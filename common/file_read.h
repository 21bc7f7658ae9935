/* file_read: a small file read whole — a configuration, a key file — for its parser, which
 * refuses one longer than it takes. */
#ifndef PRESENCED_FILE_READ_H
#define PRESENCED_FILE_READ_H

#include <stddef.h>

enum file_read_error {
    FILE_READ_OPEN,   /* fopen failed: errno says why */
    FILE_READ_MEMORY, /* out of memory */
    FILE_READ_IO,     /* a read error */
};

/* The first max + 1 bytes of path at most (more than max tells the caller the file is too
 * long), malloc'd, *len of them; NULL with *error. */
char *file_read(const char *path, size_t max, size_t *len, enum file_read_error *error);

#endif
