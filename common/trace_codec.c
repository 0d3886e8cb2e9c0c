#include "trace_codec.h"
#include "varint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sprof/trace_format.h"

void sprof_encoder_init(struct sprof_encoder *enc)
{
    memset(enc, 0, sizeof *enc);
}

void sprof_encoder_free(struct sprof_encoder *enc)
{
    free(enc->data);
    memset(enc, 0, sizeof *enc);
}

static uint8_t *reserve(struct sprof_encoder *enc, size_t size)
{
    if (enc->failed)
        return NULL;
    if (enc->capacity - enc->size < size) {
        size_t capacity = enc->capacity ? enc->capacity : 4096;
        while (capacity - enc->size < size)
            capacity *= 2;
        uint8_t *data = realloc(enc->data, capacity);
        if (!data) {
            enc->failed = true;
            return NULL;
        }
        enc->data = data;
        enc->capacity = capacity;
    }
    uint8_t *at = enc->data + enc->size;
    enc->size += size;
    return at;
}

static void put_le(uint8_t *at, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

void sprof_encoder_u16(struct sprof_encoder *enc, uint16_t value)
{
    uint8_t *at = reserve(enc, 2);
    if (at)
        put_le(at, value, 2);
}

void sprof_encoder_u32(struct sprof_encoder *enc, uint32_t value)
{
    uint8_t *at = reserve(enc, 4);
    if (at)
        put_le(at, value, 4);
}

void sprof_encoder_u64(struct sprof_encoder *enc, uint64_t value)
{
    uint8_t *at = reserve(enc, 8);
    if (at)
        put_le(at, value, 8);
}

void sprof_encoder_bytes(struct sprof_encoder *enc, const void *bytes, size_t size)
{
    uint8_t *at = reserve(enc, size);
    if (at && size)
        memcpy(at, bytes, size);
}

void sprof_encoder_varint(struct sprof_encoder *enc, uint64_t value)
{
    uint8_t bytes[SPROF_VARINT_MAX];
    sprof_encoder_bytes(enc, bytes, sprof_varint_put(bytes, value));
}

void sprof_encoder_string(struct sprof_encoder *enc, const char *text)
{
    size_t length = text ? strlen(text) : 0;
    if (length > SPROF_RECORD_MAX_PAYLOAD / 2)
        length = SPROF_RECORD_MAX_PAYLOAD / 2;
    sprof_encoder_u32(enc, (uint32_t)length);
    sprof_encoder_bytes(enc, text, length);
}

void sprof_encoder_begin_record(struct sprof_encoder *enc, uint32_t type)
{
    enc->record_start = enc->size;
    sprof_encoder_u32(enc, type);
    sprof_encoder_u32(enc, 0);
}

bool sprof_encoder_end_record(struct sprof_encoder *enc)
{
    if (enc->failed)
        return false;
    size_t payload = enc->size - enc->record_start - sizeof(struct sprof_record_header);
    if (payload > SPROF_RECORD_MAX_PAYLOAD) {
        enc->size = enc->record_start;
        return false;
    }
    put_le(enc->data + enc->record_start + 4, payload, 4);
    return true;
}

void sprof_encoder_file_header(struct sprof_encoder *enc, uint64_t run_id, uint32_t pid)
{
    sprof_encoder_bytes(enc, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE);
    sprof_encoder_u32(enc, SPROF_TRACE_VERSION);
    sprof_encoder_u32(enc, (uint32_t)sizeof(struct sprof_file_header));
    sprof_encoder_u64(enc, run_id);
    sprof_encoder_u32(enc, pid);
    sprof_encoder_u32(enc, 0);
}

int sprof_encoder_flush(struct sprof_encoder *enc, int fd)
{
    size_t done = 0;
    while (done < enc->size) {
        ssize_t n = write(fd, enc->data + done, enc->size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int error = n < 0 ? errno : EIO;
            memmove(enc->data, enc->data + done, enc->size - done);
            enc->size -= done;
            return error;
        }
        done += (size_t)n;
    }
    enc->size = 0;
    return 0;
}

static uint64_t get_le(const uint8_t *at, int bytes)
{
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value |= (uint64_t)at[i] << (8 * i);
    return value;
}

const uint8_t *sprof_decoder_bytes(struct sprof_decoder *dec, size_t size)
{
    if (!dec->ok || sprof_decoder_remaining(dec) < size) {
        dec->ok = false;
        return NULL;
    }
    const uint8_t *at = dec->cursor;
    dec->cursor += size;
    return at;
}

uint16_t sprof_decoder_u16(struct sprof_decoder *dec)
{
    const uint8_t *at = sprof_decoder_bytes(dec, 2);
    return at ? (uint16_t)get_le(at, 2) : 0;
}

uint32_t sprof_decoder_u32(struct sprof_decoder *dec)
{
    const uint8_t *at = sprof_decoder_bytes(dec, 4);
    return at ? (uint32_t)get_le(at, 4) : 0;
}

uint64_t sprof_decoder_u64(struct sprof_decoder *dec)
{
    const uint8_t *at = sprof_decoder_bytes(dec, 8);
    return at ? get_le(at, 8) : 0;
}

bool sprof_decoder_string(struct sprof_decoder *dec, const char **text, uint32_t *length)
{
    uint32_t size = sprof_decoder_u32(dec);
    const uint8_t *at = sprof_decoder_bytes(dec, size);
    *text = at ? (const char *)at : "";
    *length = at ? size : 0;
    return at != NULL;
}
