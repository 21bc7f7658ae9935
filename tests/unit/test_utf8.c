/* Unit tests of common/utf8: well-formed UTF-8 as RFC 3629 and RFC 6455 §8.1 mean it. */
#include "tap.h"

#include "../../common/utf8.h"

static void expect(const char *bytes, size_t len, bool want, const char *name)
{
    ok(utf8_valid(bytes, len) == want, "%s: %s", want ? "valid" : "invalid", name);
}

#define EXPECT(literal, want, name) expect(literal, sizeof literal - 1, want, name)

int main(void)
{
    EXPECT("", true, "nothing");
    EXPECT("plain ASCII {\"a\":1}", true, "ASCII");
    EXPECT("a\0b", true, "U+0000 is well-formed (JSON strings refuse it elsewhere)");
    EXPECT("\xc2\x80", true, "U+0080, the first two-byte character");
    EXPECT("\xdf\xbf", true, "U+07FF");
    EXPECT("\xe0\xa0\x80", true, "U+0800, the first three-byte character");
    EXPECT("\xed\x9f\xbf", true, "U+D7FF, just below the surrogates");
    EXPECT("\xee\x80\x80", true, "U+E000, just above them");
    EXPECT("\xef\xbf\xbf", true, "U+FFFF");
    EXPECT("\xf0\x90\x80\x80", true, "U+10000, the first four-byte character");
    EXPECT("\xf4\x8f\xbf\xbf", true, "U+10FFFF, the last code point");
    EXPECT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", true, "text with all lengths");

    EXPECT("\x80", false, "a continuation byte alone");
    EXPECT("\xbf", false, "another");
    EXPECT("\xc0\xaf", false, "an overlong '/' (C0)");
    EXPECT("\xc1\xbf", false, "an overlong U+007F (C1)");
    EXPECT("\xe0\x80\xaf", false, "an overlong three-byte '/'");
    EXPECT("\xe0\x9f\xbf", false, "an overlong U+07FF");
    EXPECT("\xf0\x80\x80\xaf", false, "an overlong four-byte '/'");
    EXPECT("\xf0\x8f\xbf\xbf", false, "an overlong U+FFFF");
    EXPECT("\xed\xa0\x80", false, "U+D800, a high surrogate");
    EXPECT("\xed\xbf\xbf", false, "U+DFFF, a low surrogate");
    EXPECT("\xed\xa0\xbd\xed\xb8\x80", false, "a surrogate pair in CESU-8");
    EXPECT("\xf4\x90\x80\x80", false, "U+110000, above the last code point");
    EXPECT("\xf5\x80\x80\x80", false, "F5");
    EXPECT("\xff", false, "FF");
    EXPECT("\xfe\xfe\xff\xff", false, "FE FE FF FF");
    EXPECT("\xc3", false, "a two-byte sequence cut at the end");
    EXPECT("\xe2\x82", false, "a three-byte sequence cut at the end");
    EXPECT("\xf0\x9f\x98", false, "a four-byte sequence cut at the end");
    EXPECT("\xe2\x82x", false, "a three-byte sequence cut by ASCII");
    EXPECT("\xe2x\xac", false, "ASCII where a continuation is due");
    EXPECT("\xf0\x9f\x98\xc3\xa9", false, "a sequence cut by the start of another");
    EXPECT("ok so far \xed\xa0\x80", false, "a surrogate after valid text");
    /* One byte of a valid sequence is enough to be outside the buffer: nothing is read past
     * len. */
    expect("\xe2\x82\xac", 2, false, "a length that cuts a sequence");
    return tap_done();
}
