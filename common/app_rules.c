/* app_rules: what an app's fields may hold, and its random ids and keys — one set of rules for
 * the developers' /myapps pages and the operator's admin endpoint (SPEC.md §4, §6). */
#include "app_rules.h"

#include "b64url.h"
#include "id_assertion.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <string.h>

/* min to max bytes of printable text; tabs and line ends allowed where multiline is. */
static bool text_valid(const char *value, size_t min, size_t max, bool multiline)
{
    size_t len = value ? strlen(value) : 0;
    if (len < min || len > max)
        return false;
    for (const unsigned char *p = (const unsigned char *)value; len > 0 && *p; p++)
        if ((*p < 0x20 || *p == 0x7f) && !(multiline && (*p == '\n' || *p == '\r' || *p == '\t')))
            return false;
    return true;
}

bool app_name_valid(const char *name)
{
    return text_valid(name, 1, APP_RULES_NAME_MAX, false);
}

bool app_description_valid(const char *description)
{
    return text_valid(description, 0, APP_RULES_DESCRIPTION_MAX, true);
}

bool app_domain_valid(const char *domain, bool dotted_only)
{
    return domain != NULL && id_host_valid(domain) && (!dotted_only || strchr(domain, '.'));
}

void app_domain_lower(const char *domain, char *out, size_t cap)
{
    size_t i = 0;
    for (; cap > 0 && domain[i] && i < cap - 1; i++)
        out[i] = (char)tolower((unsigned char)domain[i]);
    if (cap > 0)
        out[i] = '\0';
}

int app_key_make(char key[APP_RULES_KEY_LEN + 1])
{
    return b64url_random(32, key);
}

int app_api_key_issue(char key[APP_RULES_KEY_LEN + 1], unsigned char hash[APP_RULES_KEY_HASH_LEN])
{
    if (app_key_make(key) != 0)
        return -1;
    SHA256((const unsigned char *)key, strlen(key), hash);
    return 0;
}
