/* next_path: whether a sign-in's `next` is a path on this site as a browser reads it (SPEC 6). */
#ifndef PRESENCED_NEXT_PATH_H
#define PRESENCED_NEXT_PATH_H

#include <stdbool.h>

/* Longer ones are refused (the forms carry at most this much). */
#define NEXT_PATH_MAX 1500

/* Where a refused `next` sends the user instead. */
#define NEXT_PATH_DEFAULT "/account"

/* True when next (a decoded form or query value) is a local path: it starts with one '/' not
 * followed by '/' or '\', holds no control character (C0, DEL, C1), and still is such a path
 * once its %XX escapes are decoded. */
bool next_path_local(const char *next);

#endif
