/* web_page: the frame of every server-rendered page — one stylesheet (allowed by its hash in
 * the Content-Security-Policy), no scripts, no external resources. */
#ifndef PRESENCED_WEB_PAGE_H
#define PRESENCED_WEB_PAGE_H

#include "../../common/html.h"

/* The Content-Security-Policy of every response. */
const char *web_page_csp(void);

/* Opens a page: doctype, head with title (escaped), the stylesheet, body and heading. */
void web_page_begin(struct html *h, const char *title, const char *signed_in_email,
                    const char *csrf);
void web_page_end(struct html *h);
/* A hidden CSRF field for a form. */
void web_page_csrf(struct html *h, const char *csrf);

#endif
