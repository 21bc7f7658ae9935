/* form: application/x-www-form-urlencoded bodies and query strings, decoded strictly. */
#include "form.h"

#include "hex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Decodes in place; returns the new length, or -1. */
static long component_decode(char *text, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_digit((unsigned char)text[i + 1]);
            int lo = hex_digit((unsigned char)text[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        text[o++] = c;
    }
    text[o] = '\0';
    return (long)o;
}

/* Well-formed UTF-8, without overlong forms or surrogates. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > len)
            return false;
        unsigned cp = n == 1 ? c : c & (0xff >> (n + 1));
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

int form_parse(const char *text, size_t len, struct form *out)
{
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len) != NULL || (out->storage = malloc(len + 1)) == NULL)
        return -1;
    memcpy(out->storage, text, len);
    out->storage[len] = '\0';
    char *p = out->storage, *end = out->storage + len;
    while (p < end) {
        char *amp = memchr(p, '&', (size_t)(end - p));
        char *stop = amp ? amp : end;
        *stop = '\0';
        if (stop > p) {
            char *eq = memchr(p, '=', (size_t)(stop - p));
            char *value = eq ? eq + 1 : stop;
            if (eq != NULL)
                *eq = '\0';
            long name_len = component_decode(p, strlen(p));
            long value_len = component_decode(value, strlen(value));
            if (out->count == FORM_FIELDS_MAX || name_len < 0 || value_len < 0 ||
                !utf8_valid((unsigned char *)p, (size_t)name_len) ||
                !utf8_valid((unsigned char *)value, (size_t)value_len)) {
                form_free(out);
                return -1;
            }
            out->fields[out->count++] = (struct form_field){ p, value };
        }
        p = stop + 1;
    }
    return 0;
}

void form_free(struct form *form)
{
    free(form->storage);
    memset(form, 0, sizeof *form);
}

const char *form_get(const struct form *form, const char *name)
{
    for (size_t i = 0; i < form->count; i++)
        if (strcmp(form->fields[i].name, name) == 0)
            return form->fields[i].value;
    return NULL;
}

size_t form_get_all(const struct form *form, const char *name, const char **values, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < form->count; i++)
        if (strcmp(form->fields[i].name, name) == 0) {
            if (n < max)
                values[n] = form->fields[i].value;
            n++;
        }
    return n;
}

int form_escape(const char *text, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL;
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return (int)o;
}
