/* LEB128 variable-length integers and zigzag deltas, as the trace format's
 * compact records use them (include/sprof/trace_format.h).
 *
 * Pure functions on caller-owned bytes: ASYNC-SIGNAL-SAFE, so the preload's
 * signal handler encodes with them too. */
#ifndef SPROF_VARINT_H
#define SPROF_VARINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest encoding of a 64-bit value. */
#define SPROF_VARINT_MAX 10u

static inline uint64_t sprof_zigzag(int64_t delta)
{
    return ((uint64_t)delta << 1) ^ (uint64_t)(delta >> 63);
}

static inline int64_t sprof_unzigzag(uint64_t value)
{
    return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

/* Writes value at out (room for SPROF_VARINT_MAX bytes); returns the bytes
 * written. */
static inline uint32_t sprof_varint_put(uint8_t *out, uint64_t value)
{
    uint32_t n = 0;
    while (value >= 0x80) {
        out[n++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    out[n++] = (uint8_t)value;
    return n;
}

/* Reads one value from [*cursor, end) and advances *cursor. False, with
 * *cursor unchanged, when the bytes end mid-value or the value is longer
 * than SPROF_VARINT_MAX bytes or overflows 64 bits. */
static inline bool sprof_varint_get(const uint8_t **cursor, const uint8_t *end, uint64_t *value)
{
    const uint8_t *at = *cursor;
    uint64_t result = 0;
    for (uint32_t shift = 0; at < end && shift < 64; shift += 7) {
        uint8_t byte = *at++;
        if (shift == 63 && byte > 1)
            return false;
        result |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *cursor = at;
            *value = result;
            return true;
        }
    }
    return false;
}

/* sprof_varint_get for loops over many values: those of up to four bytes,
 * nearly all of a trace's (node distances, address deltas within a
 * module), are read unrolled when four bytes are there. */
static inline bool sprof_varint_get_fast(const uint8_t **cursor, const uint8_t *end,
                                         uint64_t *value)
{
    const uint8_t *at = *cursor;
    if (end - at >= 4) {
        uint64_t result = at[0] & 0x7f;
        if (at[0] < 0x80) {
            *cursor = at + 1;
            *value = result;
            return true;
        }
        result |= (uint64_t)(at[1] & 0x7f) << 7;
        if (at[1] < 0x80) {
            *cursor = at + 2;
            *value = result;
            return true;
        }
        result |= (uint64_t)(at[2] & 0x7f) << 14;
        if (at[2] < 0x80) {
            *cursor = at + 3;
            *value = result;
            return true;
        }
        if (at[3] < 0x80) {
            *cursor = at + 4;
            *value = result | (uint64_t)at[3] << 21;
            return true;
        }
    }
    return sprof_varint_get(cursor, end, value);
}

#endif
