/* libFuzzer target: common/ws_frame on any byte stream, cut at any point. The scan never reads
 * past what it is given, gives at most one verdict, and gives the same verdict whether the stream
 * comes whole or in pieces. */
#include "../../common/ws_frame.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint64_t max = (uint64_t)data[0] << 8 | data[1]; /* a limit of 0..65535 */
    data += 2;
    size -= 2;
    struct ws_frame_scan whole = { 0 }, pieces = { 0 };
    enum ws_frame_verdict at_once = ws_frame_scan(&whole, data, size, max);
    enum ws_frame_verdict in_pieces = WS_FRAME_OK;
    int verdicts = 0;
    for (size_t i = 0; i < size;) {
        size_t piece = 1 + (data[i] % 7);
        if (piece > size - i)
            piece = size - i;
        enum ws_frame_verdict v = ws_frame_scan(&pieces, data + i, piece, max);
        if (v != WS_FRAME_OK) {
            in_pieces = v;
            verdicts++;
        }
        i += piece;
    }
    if (verdicts > 1 || in_pieces != at_once || whole.done != (at_once != WS_FRAME_OK))
        __builtin_trap();
    return 0;
}
