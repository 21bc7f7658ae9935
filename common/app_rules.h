/* app_rules: what an app's fields may hold, and its random ids and keys — one set of rules for
 * the developers' /myapps pages and the operator's admin endpoint (SPEC.md §4, §6). */
#ifndef PRESENCED_APP_RULES_H
#define PRESENCED_APP_RULES_H

#include <stdbool.h>
#include <stddef.h>

#define APP_RULES_NAME_MAX 64
#define APP_RULES_DESCRIPTION_MAX 512
#define APP_RULES_KEY_LEN 43      /* 32 random bytes, base64url: domain keys and API keys */
#define APP_RULES_KEY_HASH_LEN 32 /* SHA-256 of an API key, the only form it is stored in */

/* 1 to APP_RULES_NAME_MAX bytes without control characters. */
bool app_name_valid(const char *name);
/* Up to APP_RULES_DESCRIPTION_MAX bytes; tabs and line ends are the only control characters. */
bool app_description_valid(const char *description);
/* A host name; with dotted_only (developers' registrations) it must hold a dot, so that nobody
 * registers "localhost". */
bool app_domain_valid(const char *domain, bool dotted_only);
/* The domain lower-cased into out (cap bytes, cut to fit). */
void app_domain_lower(const char *domain, char *out, size_t cap);

/* 32 random bytes in base64url (a domain key, an API key). Returns 0 or -1. */
int app_key_make(char key[APP_RULES_KEY_LEN + 1]);
/* A new API key and its hash: the key is shown once, the hash stored. Returns 0 or -1. */
int app_api_key_issue(char key[APP_RULES_KEY_LEN + 1], unsigned char hash[APP_RULES_KEY_HASH_LEN]);
#endif
