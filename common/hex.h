/* hex: the value of one hexadecimal digit, for the decoders of %XX and \uXXXX. */
#ifndef PRESENCED_HEX_H
#define PRESENCED_HEX_H

/* 0 to 15 for 0-9, a-f, A-F; -1 for any other character. */
int hex_digit(int c);

#endif
