/* html: escaping text into HTML, into a growing buffer (the server-rendered pages). */
#ifndef PRESENCED_HTML_H
#define PRESENCED_HTML_H

#include <stdbool.h>
#include <stddef.h>

struct html {
    char *text;
    size_t len, cap;
    bool failed; /* out of memory: the page is not sent */
};

/* Appends markup as it is (a trusted literal). */
void html_raw(struct html *h, const char *markup);
/* Appends text with & < > " ' escaped (element content and quoted attribute values). */
void html_text(struct html *h, const char *text);
/* printf of trusted markup; %s arguments are NOT escaped: use html_text for data. */
void html_rawf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void html_free(struct html *h);

#endif
