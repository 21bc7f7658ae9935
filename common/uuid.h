/* uuid: random (version 4) UUIDs in text — app ids, PUIDs, notification ids. */
#ifndef PRESENCED_UUID_H
#define PRESENCED_UUID_H

#define UUID_LEN 36

/* Writes a random UUID and a NUL into out (UUID_LEN + 1 bytes). Returns 0 or -1. */
int uuid_make(char *out);

#endif
