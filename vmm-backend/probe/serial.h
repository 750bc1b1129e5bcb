/* Output on COM1 (8250 UART at 0x3f8), polled. */
#ifndef PROBE_SERIAL_H
#define PROBE_SERIAL_H

#include "io.h"

void serial_init(void);
void serial_putc(char c);
/* The next received byte, or -1 if none is waiting (never blocks). */
int serial_getc_nowait(void);
void serial_puts(const char *s);
void serial_put_hex(u64 value, int digits);
void serial_put_dec(u64 value);

#endif
