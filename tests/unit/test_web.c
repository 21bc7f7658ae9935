/* Unit tests of the web pieces in common/: forms and query strings, HTML escaping, UUIDs, the
 * sign-in's next. */
#include "tap.h"

#include "../../common/form.h"
#include "../../common/html.h"
#include "../../common/next_path.h"
#include "../../common/uuid.h"

static void test_forms(void)
{
    struct form form;
    const char *text = "name=Chat+room&domain=chat.example.com&x=%C3%A9&empty=&flag&name=two";
    is_int(form_parse(text, strlen(text), &form), 0, "a form parses");
    is_str(form_get(&form, "name"), "Chat room", "+ is a space");
    is_str(form_get(&form, "x"), "\xc3\xa9", "percent escapes decode to UTF-8");
    is_str(form_get(&form, "empty"), "", "an empty value");
    is_str(form_get(&form, "flag"), "", "a name without =");
    ok(form_get(&form, "missing") == NULL, "a missing field is NULL");
    const char *values[4];
    is_int(form_get_all(&form, "name", values, 4), 2, "repeated names are all kept");
    is_str(values[1], "two", "in order");
    form_free(&form);
    const char *bad[] = { "a=%zz", "a=%4", "a=%00", "a=%C3", "a=%ED%A0%80", "a=%C0%AF" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        is_int(form_parse(bad[i], strlen(bad[i]), &form), -1, "'%s' refused", bad[i]);
    char many[1024] = "";
    for (int i = 0; i <= FORM_FIELDS_MAX; i++)
        strcat(many, "a=1&");
    is_int(form_parse(many, strlen(many), &form), -1, "more than %d fields refused",
           FORM_FIELDS_MAX);
    char out[64];
    is_int(form_escape("https://x.test/a b?c=d&e", out, sizeof out), 40, "escaped");
    is_str(out, "https%3A%2F%2Fx.test%2Fa%20b%3Fc%3Dd%26e", "reserved characters escaped");
    is_int(form_escape("abc", out, 3), -1, "too small a buffer is refused");
}

static void test_html(void)
{
    struct html h = { 0 };
    html_raw(&h, "<p title=\"");
    html_text(&h, "\"><script>alert('x')</script>&");
    html_raw(&h, "\">");
    is_str(h.text, "<p title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">",
           "text is escaped for content and attributes");
    html_rawf(&h, "%d", 42);
    ok(strstr(h.text, "42") != NULL, "formatted markup appended");
    html_free(&h);
}

static void test_uuids(void)
{
    char a[UUID_LEN + 1], b[UUID_LEN + 1];
    ok(uuid_make(a) == 0 && uuid_make(b) == 0, "two UUIDs");
    ok(strcmp(a, b) != 0, "different");
    ok(strlen(a) == 36 && a[8] == '-' && a[14] == '4' && strchr("89ab", a[19]) != NULL,
       "version 4, variant 1: %s", a);
}

static void test_next_paths(void)
{
    static const char *const local[] = {
        "/", "/account", "/myapps/1f0c/validate", "/a//b", "/a/\\b", "/caf\xc3\xa9",
        "/grant/1f0c?redirect=https%3A%2F%2Fchat.test%2Fwelcome&id=erin", "/%", "/%2", "/%zz",
        "/%252F/x", "/a%2F%2Fb",
    };
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        ok(next_path_local(local[i]), "'%s' is a local path", local[i]);
    /* Browsers strip tab, LF and CR anywhere and read '\\' as '/': each of these is another
     * site, or could become one. */
    static const char *const refused[] = {
        "", "account", "//evil.com", "/\\evil.com", "\\\\evil.com", "\\/evil.com",
        "/\t/evil.com", "/\n/evil.com", "/\r/evil.com", "/\r\n/evil.com", "\t//evil.com",
        "/\t\\evil.com", " /x", "https://evil.com", "http:/evil.com", "javascript:alert(1)",
        "/%09/evil.com", "/%0a/evil.com", "/%0D/evil.com", "/%2F%2Fevil.com", "/%2f/evil.com",
        "/%5Cevil.com", "/%5c%5cevil.com", "/a%0d%0aSet-Cookie:x=1", "/a\x7f", "/a%7F",
        "/a\x01", "/a\xc2\x85", "/a%C2%85", "/a\x1b",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        ok(!next_path_local(refused[i]), "next #%zu refused", i);
    ok(!next_path_local(NULL), "no next is refused");
    char longest[NEXT_PATH_MAX + 2];
    memset(longest, 'a', sizeof longest - 1);
    longest[0] = '/';
    longest[NEXT_PATH_MAX] = '\0';
    ok(next_path_local(longest), "%d bytes pass", NEXT_PATH_MAX);
    longest[NEXT_PATH_MAX] = 'a';
    longest[NEXT_PATH_MAX + 1] = '\0';
    ok(!next_path_local(longest), "%d bytes are refused", NEXT_PATH_MAX + 1);
    is_str(NEXT_PATH_DEFAULT, "/account", "a refused next goes to /account");
}

int main(void)
{
    test_forms();
    test_next_paths();
    test_html();
    test_uuids();
    return tap_done();
}
