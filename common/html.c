/* html: escaping text into HTML, into a growing buffer (the server-rendered pages). */
#include "html.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void append(struct html *h, const char *text, size_t len)
{
    if (h->failed)
        return;
    if (h->len + len + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 4096;
        while (cap < h->len + len + 1)
            cap *= 2;
        char *grown = realloc(h->text, cap);
        if (grown == NULL) {
            h->failed = true;
            return;
        }
        h->text = grown;
        h->cap = cap;
    }
    memcpy(h->text + h->len, text, len);
    h->len += len;
    h->text[h->len] = '\0';
}

void html_raw(struct html *h, const char *markup)
{
    append(h, markup, strlen(markup));
}

void html_text(struct html *h, const char *text)
{
    for (const char *p = text; *p != '\0';) {
        size_t plain = strcspn(p, "&<>\"'");
        append(h, p, plain);
        p += plain;
        if (*p == '\0')
            break;
        const char *entity = *p == '&'   ? "&amp;"
                             : *p == '<' ? "&lt;"
                             : *p == '>' ? "&gt;"
                             : *p == '"' ? "&quot;"
                                         : "&#39;";
        append(h, entity, strlen(entity));
        p++;
    }
}

void html_rawf(struct html *h, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        h->failed = true;
    else
        append(h, buf, (size_t)n);
}

void html_free(struct html *h)
{
    free(h->text);
    memset(h, 0, sizeof *h);
}
