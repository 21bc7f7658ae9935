/* file_read: a small file read whole — a configuration, a key file — for its parser, which
 * refuses one longer than it takes. */
#include "file_read.h"

#include <stdio.h>
#include <stdlib.h>

char *file_read(const char *path, size_t max, size_t *len, enum file_read_error *error)
{
    *len = 0;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        *error = FILE_READ_OPEN; /* errno is fopen's */
        return NULL;
    }
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        *error = FILE_READ_MEMORY;
        return NULL;
    }
    *len = fread(buf, 1, max + 1, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error) {
        free(buf);
        *len = 0;
        *error = FILE_READ_IO;
        return NULL;
    }
    return buf;
}
