/* web_page: the frame of every server-rendered page — one stylesheet (allowed by its hash in
 * the Content-Security-Policy), no scripts, no external resources. */
#include "web_page.h"

#include "../../common/b64url.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

static const char STYLE[] =
    "body{font:16px/1.5 system-ui,sans-serif;max-width:44em;margin:2em auto;padding:0 1em;"
    "color:#222}header{display:flex;justify-content:space-between;align-items:center;"
    "border-bottom:1px solid #ddd;margin-bottom:1em}h1{font-size:1.4em}"
    "form.inline{display:inline}input[type=text],textarea{width:100%;box-sizing:border-box}"
    "button{padding:.4em 1em;margin:.2em}.allow{background:#0a7;color:#fff;border:0}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.3em;"
    "text-align:left}code{background:#f4f4f4;padding:.1em .3em;word-break:break-all}"
    ".error{color:#b00}";

const char *web_page_csp(void)
{
    static char csp[256];
    if (csp[0] == '\0') {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        char hash[64];
        SHA256((const unsigned char *)STYLE, strlen(STYLE), digest);
        b64url_encode(digest, sizeof digest, hash);
        /* CSP hashes are standard base64: map the URL-safe alphabet back and pad. */
        for (char *p = hash; *p; p++)
            *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
        snprintf(csp, sizeof csp,
                 "default-src 'none'; style-src 'sha256-%s='; img-src 'self'; "
                 "frame-ancestors 'none'; base-uri 'none'",
                 hash);
    }
    return csp;
}

void web_page_csrf(struct html *h, const char *csrf)
{
    html_raw(h, "<input type=\"hidden\" name=\"csrf\" value=\"");
    html_text(h, csrf);
    html_raw(h, "\">");
}

void web_page_begin(struct html *h, const char *title, const char *signed_in_email,
                    const char *csrf)
{
    html_raw(h, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width\"><title>");
    html_text(h, title);
    html_raw(h, " — Presence</title><style>");
    html_raw(h, STYLE);
    html_raw(h, "</style></head><body><header><strong>Presence</strong>");
    if (signed_in_email != NULL) {
        html_raw(h, "<span>");
        html_text(h, signed_in_email);
        html_raw(h, " · <a href=\"/account\">account</a> · <a href=\"/myapps\">my apps</a> "
                    "<form class=\"inline\" method=\"post\" action=\"/logout\">");
        web_page_csrf(h, csrf);
        html_raw(h, "<button type=\"submit\">Sign out</button></form></span>");
    }
    html_raw(h, "</header><main><h1>");
    html_text(h, title);
    html_raw(h, "</h1>");
}

void web_page_end(struct html *h)
{
    html_raw(h, "</main></body></html>\n");
}
