/* Encoding and decoding of trace records (include/sprof/trace_format.h).
 *
 * The encoder appends little-endian fields to a growable buffer; it uses
 * malloc and is NOT async-signal-safe (the preload calls it only from its
 * writer thread and at exit). The decoder reads fields from a byte range and
 * never reads past it: a short payload sets ok = false and yields zeros. */
#ifndef SPROF_TRACE_CODEC_H
#define SPROF_TRACE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "varint.h"

struct sprof_encoder {
    uint8_t *data;
    size_t size;
    size_t capacity;
    size_t record_start; /* offset of the open record's header */
    bool failed;         /* an allocation failed; contents are incomplete */
};

void sprof_encoder_init(struct sprof_encoder *enc);
void sprof_encoder_free(struct sprof_encoder *enc);
/* Starts a record of the given type; end it with sprof_encoder_end_record. */
void sprof_encoder_begin_record(struct sprof_encoder *enc, uint32_t type);
/* Fills in the open record's size. A record whose payload grew past
 * SPROF_RECORD_MAX_PAYLOAD is dropped and false is returned. */
bool sprof_encoder_end_record(struct sprof_encoder *enc);
void sprof_encoder_u16(struct sprof_encoder *enc, uint16_t value);
void sprof_encoder_u32(struct sprof_encoder *enc, uint32_t value);
void sprof_encoder_u64(struct sprof_encoder *enc, uint64_t value);
void sprof_encoder_bytes(struct sprof_encoder *enc, const void *bytes, size_t size);
/* A LEB128 variable-length integer (common/varint.h). */
void sprof_encoder_varint(struct sprof_encoder *enc, uint64_t value);
/* A length-prefixed string; NULL is written as the empty string. */
void sprof_encoder_string(struct sprof_encoder *enc, const char *text);
/* Appends the file header. */
void sprof_encoder_file_header(struct sprof_encoder *enc, uint64_t run_id, uint32_t pid);
/* Writes everything to fd (retrying short writes and EINTR) and empties the
 * buffer. Returns 0, or an errno value; on error the data stays buffered. */
int sprof_encoder_flush(struct sprof_encoder *enc, int fd);

struct sprof_decoder {
    const uint8_t *cursor;
    const uint8_t *end;
    bool ok; /* false once a read ran past the end */
};

static inline void sprof_decoder_init(struct sprof_decoder *dec, const void *data, size_t size)
{
    dec->cursor = data;
    dec->end = dec->cursor + size;
    dec->ok = true;
}
static inline size_t sprof_decoder_remaining(const struct sprof_decoder *dec)
{
    return (size_t)(dec->end - dec->cursor);
}
uint16_t sprof_decoder_u16(struct sprof_decoder *dec);
uint32_t sprof_decoder_u32(struct sprof_decoder *dec);
uint64_t sprof_decoder_u64(struct sprof_decoder *dec);
/* A LEB128 variable-length integer; a malformed one sets ok = false and
 * yields 0. Values of up to four bytes, nearly all of a trace's, are read
 * inline (sprof_varint_get_fast). */
static inline uint64_t sprof_decoder_varint(struct sprof_decoder *dec)
{
    uint64_t value;
    if (dec->ok && sprof_varint_get_fast(&dec->cursor, dec->end, &value))
        return value;
    dec->ok = false;
    return 0;
}
/* Returns a pointer to the next size bytes, or NULL (and ok = false). */
const uint8_t *sprof_decoder_bytes(struct sprof_decoder *dec, size_t size);
/* Reads a length-prefixed string; *text is not NUL-terminated. */
bool sprof_decoder_string(struct sprof_decoder *dec, const char **text, uint32_t *length);

#endif
