/* form: application/x-www-form-urlencoded bodies and query strings, decoded strictly. */
#ifndef PRESENCED_FORM_H
#define PRESENCED_FORM_H

#include <stddef.h>

#define FORM_FIELDS_MAX 32

struct form_field {
    char *name;
    char *value;
};

struct form {
    struct form_field fields[FORM_FIELDS_MAX];
    size_t count;
    char *storage; /* the decoded text the fields point into */
};

/* Decodes text (len bytes): '&'-separated name=value pairs, '+' as space, %XX escapes. Refuses
 * bad escapes, NUL bytes, invalid UTF-8 and more than FORM_FIELDS_MAX fields. Returns 0 or -1. */
int form_parse(const char *text, size_t len, struct form *out);
void form_free(struct form *form);

/* The first value of name, or NULL. */
const char *form_get(const struct form *form, const char *name);
/* Writes each value of name into values (up to max); returns how many there are. */
size_t form_get_all(const struct form *form, const char *name, const char **values, size_t max);

/* Percent-encodes text for a query value into out (cap bytes). Returns the length, or -1. */
int form_escape(const char *text, char *out, size_t cap);

#endif
