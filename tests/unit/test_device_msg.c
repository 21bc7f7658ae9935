/* Unit tests of worker/device_msg: what a device may send on /presence and the errno it gets;
 * each input also goes through the json-c path the parser replaced, which must agree. */
#include "tap.h"

#include "../../shm/conn.h"
#include "../tools/dev_msg_reference.h"

static int disagreements;

static int parse(const char *text, struct dev_msg *msg)
{
    const char *error = NULL;
    size_t len = strlen(text);
    int rc = dev_msg_parse(text, len, msg, &error);
    if (rc != 0 && error == NULL)
        diag("errno %d without a message", rc);
    struct dev_msg_ref ref;
    dev_msg_reference(text, len, &ref);
    if (!dev_msg_agrees(rc, error, msg, &ref)) {
        diag("the json-c path says %d (%s) of %s", ref.rc, ref.error ? ref.error : "", text);
        disagreements++;
    }
    dev_msg_reference_free(&ref);
    return rc;
}

static bool text_is(const char *text, size_t len, const char *want)
{
    return text != NULL && len == strlen(want) && memcmp(text, want, len) == 0;
}

static void expect(const char *text, int want, const char *name)
{
    struct dev_msg msg;
    int rc = parse(text, &msg);
    is_int(rc, want, "%s", name);
    if (rc == 0)
        dev_msg_free(&msg);
}

int main(void)
{
    struct dev_msg msg;
    is_int(parse("{}", &msg), 0, "{} is a keep-alive");
    is_int(msg.kind, DEV_MSG_PING, "of kind ping");
    dev_msg_free(&msg);
    is_int(parse(" {\"email\":\"a@example.com\",\"status\":\"online\",\"assertion\":\"x~y\","
                 "\"device\":\"phone-1\",\"extra\":[1,2]} \n",
                 &msg),
           0, "the README's status update, with an unknown field");
    is_int(msg.kind, DEV_MSG_STATUS, "of kind status");
    is_str(msg.email, "a@example.com", "email");
    is_str(msg.device, "phone-1", "device");
    ok(text_is(msg.assertion, msg.assertion_len, "x~y"), "assertion");
    is_int(msg.status, SHM_STATUS_ONLINE, "online");
    dev_msg_free(&msg);
    is_int(parse("{\"email\":\"a@example.com\",\"status\":\"unavailable\"}", &msg), 0,
           "device and assertion are optional");
    is_str(msg.device, "default", "device defaults to 'default'");
    ok(msg.assertion == NULL, "no assertion");
    is_int(msg.status, SHM_STATUS_UNAVAILABLE, "unavailable");
    dev_msg_free(&msg);

    is_int(parse("{\"action\":\"push_subscribe\",\"subscription\":{}}", &msg), 0,
           "a message with action is a command");
    is_int(msg.kind, DEV_MSG_COMMAND, "of kind command");
    is_str(msg.action, "push_subscribe", "its action");
    dev_msg_free(&msg);
    is_int(parse("{\"action\":\"x\",\"email\":\"a@example.com\",\"status\":\"bogus\"}", &msg),
           0, "a command is not read as a status update");
    dev_msg_free(&msg);
    expect("{\"action\":7}", 11, "an action that is not a string");

    expect("", 10, "empty text");
    expect("nope", 10, "not JSON");
    expect("[1,2]", 10, "an array is not an object");
    expect("\"{}\"", 10, "a string is not an object");
    expect("{} {}", 10, "two objects");
    expect("{\"a\":1,}", 10, "a trailing comma (strict JSON)");
    expect("{'a':1}", 10, "single quotes (strict JSON)");
    expect("{\"a\":\"\xff\"}", 10, "invalid UTF-8");
    expect("{\"a\":01}", 10, "a number with a leading zero");
    expect("{\"a\":NaN}", 10, "NaN");
    expect("{\"a\":1} // comment", 10, "a comment");
    expect("{\"a\":\"tab\there\"}", 10, "a raw control character in a string");
    expect("{\"a\":\"\\x\"}", 10, "an unknown escape");
    expect("{\"status\":\"online\"}", 11, "no email");
    expect("{\"email\":5,\"status\":\"online\"}", 11, "email not a string");
    expect("{\"email\":\"\",\"status\":\"online\"}", 11, "empty email");
    expect("{\"email\":\"a@b\\u0000c\",\"status\":\"online\"}", 11, "email with a NUL");
    expect("{\"email\":\"a@b\"}", 11, "no status");
    expect("{\"email\":\"a@b\",\"status\":true}", 11, "status not a string");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"device\":7}", 11, "device not a string");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"device\":\"\"}", 11, "empty device");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"device\":"
           "\"01234567890123456789012345678901234567890123456789012345678901234\"}",
           11, "a 65-byte device");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"assertion\":{}}", 11,
           "assertion not a string");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"assertion\":\"x~y\\u0000z\"}", 11,
           "an assertion with a NUL byte");
    is_int(parse("{\"email\":\"a@example.com\",\"status\":\"online\",\"token\":\"h.p.s\"}", &msg),
           0, "a token instead of an assertion (SPEC 3.1)");
    ok(text_is(msg.token, msg.token_len, "h.p.s"), "token");
    ok(msg.assertion == NULL, "and no assertion");
    dev_msg_free(&msg);
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"token\":\"h.p.s\",\"assertion\":\"x~y\"}",
           11, "token and assertion together");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"token\":[]}", 11, "token not a string");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"token\":\"h.p\\u0000s\"}", 11,
           "a token with a NUL byte");
    expect("{\"email\":\"a@b\",\"status\":\"online\\u0000\"}", 11,
           "a status with a NUL is not \"online\"");
    expect("{\"email\":\"a@b\",\"status\\u0000x\":\"online\"}", 11,
           "a member name with a NUL is not \"status\"");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"other\":\"\\u0000\"}", 11,
           "no string carries U+0000, not even an unknown field's");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\\ud800\"}", 10,
           "an escaped lone high surrogate");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\\udfff\"}", 10,
           "an escaped lone low surrogate");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\\ud800\\u0041\"}", 10,
           "a high surrogate before something other than a low one");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\\ud800\\\"}", 10,
           "a high surrogate at the end of the text");
    expect("{\"email\":\"a@b\",\"status\":\"busy\",\"x\":\"\\ud83d\\ude00\"}", 12,
           "a surrogate pair is one character (here U+1F600)");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\xed\xa0\x80\"}", 10,
           "a raw surrogate (CESU-8)");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\xc0\xaf\"}", 10,
           "an overlong form");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\xf4\x90\x80\x80\"}", 10,
           "a code point above U+10FFFF");
    expect("{\"email\":\"a@b\",\"status\":\"busy\"}", 12, "an unknown status");
    expect("{\"email\":\"a@b\",\"status\":\"Online\"}", 12, "status values are case-sensitive");
    char deep[200];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"a\":", 5);
    deep[sizeof deep - 1] = '\0';
    expect(deep, 10, "deep nesting is refused, not recursed into");

    /* Where a parser of its own could part from json-c's. */
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}", 0,
           "15 levels of nesting, as deep as json-c goes");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}",
           10, "16 levels: json-c refuses them");
    expect("{\"email\":1,\"email\":\"a@b\",\"status\":\"online\"}", 0,
           "the last of two members of the same name counts");
    expect("{\"email\":\"a@b\",\"email\":1,\"status\":\"online\"}", 11,
           "the last of them, even when it is not a string");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":123456789012345678901234567890,"
           "\"y\":-1e999,\"z\":1.5e-400,\"w\":-0}",
           0, "numbers json-c cannot hold are still numbers");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":nul}", 10, "a cut literal");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":-}", 10, "a lone minus");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":1.}", 10, "no digit after the point");
    expect("{\"email\":\"a@b\",\"status\":\"online\"\f}", 10, "a form feed is not whitespace");
    expect("{\"email\":\"a@b\",\"status\":\"online\",\"x\":\"\x7f\"}", 0, "DEL is text");
    is_int(parse("{\"\\u0065mail\":\"\\u0061@b\",\"st\\u0061tus\":\"onl\\u0069ne\","
                 "\"device\":\"d\\u00e9v\\ud83d\\ude00\",\"assertion\":\"x\\/y\\\\z\\n\"}",
                 &msg),
           0, "escapes in member names and values");
    is_str(msg.email, "a@b", "an escaped e-mail is decoded");
    is_str(msg.device, "d\xc3\xa9v\xf0\x9f\x98\x80", "a device name is decoded to UTF-8");
    is_int(msg.status, SHM_STATUS_ONLINE, "an escaped status value is decoded");
    ok(text_is(msg.assertion, msg.assertion_len, "x/y\\z\n"), "an escaped assertion is decoded");
    dev_msg_free(&msg);
    char long_email[400];
    snprintf(long_email, sizeof long_email, "{\"email\":\"%0254d\",\"status\":\"online\"}", 0);
    expect(long_email, 0, "a 254-byte e-mail");
    snprintf(long_email, sizeof long_email, "{\"email\":\"%0254d\\u00e9\",\"status\":\"online\"}",
             0);
    expect(long_email, 11, "an e-mail of 256 bytes once decoded");
    is_int(disagreements, 0, "the json-c path agreed on every input");
    return tap_done();
}
