/* The .cosmoext format, version 2.0 (docs/format.md).  cosmoext/format.py is
   the Python twin; tests/test_format_agreement.py checks they agree.
   Little-endian; the loader reads fields with memcpy so nothing here relies
   on the file being aligned in memory. */
#ifndef CXFORMAT_H
#define CXFORMAT_H
#include <stdint.h>

#define CX_MAGIC "COSMOEXT"
#define CX_IMAGE_MAGIC "CXIM"
#define CX_VERSION_MAJOR 2
#define CX_VERSION_MINOR 0
/* In memory, segment vaddrs and vsize are multiples of CX_ALIGN (64 KiB:
   16 KiB Apple pages, 64 KiB Windows granularity).  In the file, images and
   segment data are packed at CX_FILE_ALIGN; the loader copies them.  An
   image's base must be aligned to its header's align, a power of two from
   CX_MIN_BASE_ALIGN to CX_ALIGN. */
#define CX_ALIGN 0x10000u
#define CX_FILE_ALIGN 16u
#define CX_MIN_BASE_ALIGN 0x1000u
/* The image table lies in the file's first CX_HEAD_MAX bytes. */
#define CX_HEAD_MAX 0x10000u
#define CX_MAX_IMAGES 8
#define CX_MAX_SEGMENTS 8
#define CX_MAX_VSIZE (1ull << 30)
#define CX_MAX_IMPORTS 65536u
#define CX_MAX_FIXUPS (1u << 24)
#define CX_MAX_INIT 65536u
/* Checksums (CRC-32C, reflected polynomial; standard init and final xor):
   head_crc32c covers the file header and the image table (bytes 0 to the
   table's end) except the field itself, at CX_HEAD_CRC_AT; an image table
   entry's crc32c covers its image. */
#define CX_CRC32C_POLY 0x82f63b78u
#define CX_HEAD_CRC_AT 40

#define CX_EM_X86_64 62
#define CX_EM_AARCH64 183

#define CX_F_PIC (1u << 0)
#define CX_F_NEAR_HOST (1u << 1)
#define CX_F_LOW_IMAGE (1u << 2)
#define CX_F_LOW_HOST (1u << 3)
#define CX_F_STATIC_TLS (1u << 4)
#define CX_F_DYNAMIC_TLS (1u << 5)
#define CX_F_REQUIREMENTS 0x3eu /* the bits the loader re-derives */

#define CX_PROT_R 1u
#define CX_PROT_W 2u
#define CX_PROT_X 4u
#define CX_SEG_TEXT 1u
#define CX_SEG_RODATA 2u
#define CX_SEG_RELRO 3u
#define CX_SEG_DATA 4u

enum cx_fixup_kind {
  CX_FX_ABS64 = 1,
  CX_FX_ABS32 = 2,
  CX_FX_ABS32S = 3,
  CX_FX_PC32 = 4,
  CX_FX_PC64 = 5,
  CX_FX_TPOFF64 = 6,
  CX_FX_TPOFF32 = 7,
  CX_FX_DTPMOD64 = 8,
  CX_FX_A64_ADRP = 16,
  CX_FX_A64_ADD_LO12 = 17,
  CX_FX_A64_LDST8_LO12 = 18,
  CX_FX_A64_LDST16_LO12 = 19,
  CX_FX_A64_LDST32_LO12 = 20,
  CX_FX_A64_LDST64_LO12 = 21,
  CX_FX_A64_LDST128_LO12 = 22,
  CX_FX_A64_MOVW_G0 = 23,
  CX_FX_A64_MOVW_G1 = 24,
  CX_FX_A64_MOVW_G2 = 25,
  CX_FX_A64_MOVW_G3 = 26,
  CX_FX_A64_TLSDESC = 27,  /* 16 bytes {resolver, argument}: TLS descriptor */
  CX_FX_A64_ADD_HI12 = 28, /* ADD imm12 = V >> 12, 0 <= V < 2^24 */
};
/* aarch64 kinds 17..26 (V = S+A): modifier bit "V must fit the field". */
#define CX_FX_A64_CHECK 0x100u
#define CX_SYM_BASE 0xffffffffu
#define CX_SYM_NONE 0xfffffffeu
#define CX_SYM_TP 0xfffffffdu /* S = T, the static TLS block offset (a64 kinds) */
#define CX_IMP_WEAK 1u

/* Sizes of the on-disk records; offsets are given as comments. */
#define CX_FILE_HDR_SIZE 64
struct cx_file_hdr {
  char magic[8];          /* 0 */
  uint16_t version_major; /* 8 */
  uint16_t version_minor; /* 10 */
  uint32_t header_size;   /* 12 */
  uint32_t image_count;   /* 16 */
  uint32_t entry_size;    /* 20 */
  uint64_t file_size;     /* 24 */
  uint64_t table_offset;  /* 32 */
  uint32_t head_crc32c;   /* 40 */
  uint8_t reserved[20];   /* 44 */
};

#define CX_IMAGE_ENT_SIZE 64
struct cx_image_ent {
  uint16_t machine;   /* 0 */
  uint16_t reserved0; /* 2 */
  uint32_t crc32c;    /* 4 */
  uint64_t offset;    /* 8 */
  uint64_t size;      /* 16 */
  uint8_t sha256[32]; /* 24 */
  uint64_t reserved2; /* 56 */
};

#define CX_IMAGE_HDR_SIZE 224
#define CX_META_DIGEST_AT 192
struct cx_image_hdr {
  char magic[4];          /* 0 */
  uint16_t machine;       /* 4 */
  uint16_t header_size;   /* 6 */
  uint32_t flags;         /* 8 */
  /* the base alignment the image needs: a power of two, 4 KiB..64 KiB */
  uint32_t align;         /* 12 */
  char target[16];        /* 16 */
  char python_abi[16];    /* 32 */
  uint64_t vsize;         /* 48 */
  uint64_t entry;         /* 56 */
  uint32_t name_off;      /* 64 */
  uint32_t reserved0;     /* 68 */
  uint32_t seg_off, seg_count; /* 72 */
  uint32_t imp_off, imp_count; /* 80 */
  uint32_t fix_off, fix_count; /* 88 */
  uint32_t str_off, str_size;  /* 96 */
  uint64_t init_vaddr;    /* 104 */
  uint32_t init_count;    /* 112 */
  uint32_t fini_count;    /* 116 */
  uint64_t fini_vaddr;    /* 120 */
  uint64_t ehhdr_vaddr;   /* 128 */
  uint32_t ehhdr_size;    /* 136 */
  uint32_t reserved1;     /* 140 */
  uint64_t eh_vaddr;      /* 144 */
  uint64_t eh_size;       /* 152 */
  uint64_t tls_vaddr;     /* 160 */
  uint32_t tls_filesz;    /* 168 */
  uint32_t tls_memsz;     /* 172 */
  uint32_t tls_align;     /* 176 */
  uint32_t reserved2;     /* 180 */
  uint64_t reserved3;     /* 184 */
  /* 192: SHA-256 over image[0:192] + image[224:meta_end], where meta_end is
     the end of the last table or string table.  cosmoext.format.parse checks
     it; this loader relies on the image's crc32c instead. */
  uint8_t meta_sha256[32];
};

#define CX_SEGMENT_SIZE 40
struct cx_segment {
  uint64_t vaddr, memsz, offset, filesz; /* 0, 8, 16, 24 */
  uint32_t prot, kind;                   /* 32, 36 */
};

#define CX_IMPORT_SIZE 16
struct cx_import {
  uint32_t name_off, hash, flags, reserved;
};

#define CX_FIXUP_SIZE 24
struct cx_fixup {
  uint64_t vaddr; /* 0 */
  uint32_t kind;  /* 8 */
  uint32_t sym;   /* 12 */
  int64_t addend; /* 16 */
};

#endif
