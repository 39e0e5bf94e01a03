/* CRC-32C (Castagnoli, the iSCSI/ext4 checksum): the loader's default check of
   every byte of a .cosmoext file it reads (docs/format.md, *Checksums*).

   cx_crc32c() uses the CPU's CRC32C instruction where there is one (x86_64
   SSE4.2, aarch64 CRC; checked at run time) and a table otherwise.  The
   value is the standard one: cx_crc32c(0, "123456789", 9) == 0xe3069283, and
   cx_crc32c(cx_crc32c(0, a, n), b, m) is the CRC of a followed by b. */
#ifndef CXCRC32C_H
#define CXCRC32C_H
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden) /* internal to the runtime */
uint32_t cx_crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version, whatever the CPU has (for tests and benchmarks). */
uint32_t cx_crc32c_sw(uint32_t crc, const void *data, size_t len);
/* Which one cx_crc32c() uses here: "sse4.2", "armv8-crc" or "table". */
const char *cx_crc32c_impl(void);
#pragma GCC visibility pop

#endif
