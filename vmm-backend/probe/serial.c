#include "serial.h"

#define COM1 0x3f8
#define UART_IER 1
#define UART_LCR 3
#define UART_LSR 5
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20

void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00); /* polled: no interrupts */
    outb(COM1 + UART_LCR, 0x03); /* 8 data bits, no parity, 1 stop bit */
}

void serial_putc(char c)
{
    /* One status read per byte: the emulated UART is always ready, a real one may not be. */
    while (!(inb(COM1 + UART_LSR) & LSR_THR_EMPTY))
        cpu_relax();
    outb(COM1, (u8)c);
}

int serial_getc_nowait(void)
{
    if (!(inb(COM1 + UART_LSR) & LSR_DATA_READY))
        return -1;
    return inb(COM1);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

void serial_put_hex(u64 value, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4)
        serial_putc(hex[(value >> shift) & 0xf]);
}

void serial_put_dec(u64 value)
{
    char buf[20];
    int n = 0;
    do {
        buf[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n)
        serial_putc(buf[--n]);
}
