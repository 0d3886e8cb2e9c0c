#include "trace_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "trace_codec.h"

#define SPROF_READER_BUFFER (256u << 10)

int sprof_reader_open(struct sprof_reader *reader, const char *path)
{
    memset(reader, 0, sizeof *reader);
    FILE *file = fopen(path, "rbe");
    if (!file) {
        snprintf(reader->error, sizeof reader->error, "%s", strerror(errno));
        return -1;
    }
    /* Records are small: with stdio's 4 KB buffer a large trace took a
     * read system call per 4 KB. Without this buffer stdio's works. */
    char *buffer = malloc(SPROF_READER_BUFFER);
    if (buffer && setvbuf(file, buffer, _IOFBF, SPROF_READER_BUFFER) != 0) {
        free(buffer);
        buffer = NULL;
    }
    int opened = sprof_reader_open_stream(reader, file);
    reader->stdio_buffer = buffer; /* freed after the stream is closed */
    return opened;
}

int sprof_reader_open_stream(struct sprof_reader *reader, FILE *file)
{
    memset(reader, 0, sizeof *reader);
    reader->file = file;
    uint8_t bytes[sizeof(struct sprof_file_header)];
    size_t got = fread(bytes, 1, sizeof bytes, file);
    if (got < SPROF_TRACE_MAGIC_SIZE || memcmp(bytes, SPROF_TRACE_MAGIC, SPROF_TRACE_MAGIC_SIZE) != 0) {
        snprintf(reader->error, sizeof reader->error,
                 ferror(file) ? "read error" : "not an sprof trace (bad magic)");
        return -1;
    }
    if (got < sizeof bytes) {
        snprintf(reader->error, sizeof reader->error, "trace header is cut short");
        return -1;
    }
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, bytes + SPROF_TRACE_MAGIC_SIZE, sizeof bytes - SPROF_TRACE_MAGIC_SIZE);
    memcpy(reader->header.magic, bytes, SPROF_TRACE_MAGIC_SIZE);
    reader->header.version = sprof_decoder_u32(&dec);
    reader->header.header_size = sprof_decoder_u32(&dec);
    reader->header.run_id = sprof_decoder_u64(&dec);
    reader->header.pid = sprof_decoder_u32(&dec);
    reader->header.reserved = sprof_decoder_u32(&dec);
    if (reader->header.version < SPROF_TRACE_VERSION_MIN ||
        reader->header.version > SPROF_TRACE_VERSION) {
        snprintf(reader->error, sizeof reader->error,
                 "unsupported trace version %u (this build reads versions %u to %u)",
                 reader->header.version, SPROF_TRACE_VERSION_MIN, SPROF_TRACE_VERSION);
        return -1;
    }
    if (reader->header.header_size < sizeof bytes || reader->header.header_size > 4096) {
        snprintf(reader->error, sizeof reader->error, "bad trace header size %u",
                 reader->header.header_size);
        return -1;
    }
    /* A later minor revision may append header fields: skip them. */
    for (uint32_t extra = reader->header.header_size - (uint32_t)sizeof bytes; extra > 0; extra--) {
        if (fgetc(file) == EOF) {
            snprintf(reader->error, sizeof reader->error, "trace header is cut short");
            return -1;
        }
    }
    reader->offset = reader->header.header_size;
    return 0;
}

enum sprof_read_status sprof_reader_next(struct sprof_reader *reader, struct sprof_record *record)
{
    uint8_t bytes[sizeof(struct sprof_record_header)];
    size_t got = fread(bytes, 1, sizeof bytes, reader->file);
    if (got == 0 && !ferror(reader->file))
        return SPROF_READ_EOF;
    if (got < sizeof bytes) {
        if (ferror(reader->file)) {
            snprintf(reader->error, sizeof reader->error, "read error at offset %llu",
                     (unsigned long long)reader->offset);
            return SPROF_READ_IO_ERROR;
        }
        snprintf(reader->error, sizeof reader->error,
                 "trace ends inside a record header at offset %llu",
                 (unsigned long long)reader->offset);
        return SPROF_READ_TRUNCATED;
    }
    struct sprof_decoder dec;
    sprof_decoder_init(&dec, bytes, sizeof bytes);
    record->type = sprof_decoder_u32(&dec);
    record->size = sprof_decoder_u32(&dec);
    record->offset = reader->offset;
    if (record->type == 0 || record->size > SPROF_RECORD_MAX_PAYLOAD) {
        snprintf(reader->error, sizeof reader->error,
                 "corrupt record header at offset %llu (type %u, size %u)",
                 (unsigned long long)reader->offset, record->type, record->size);
        return SPROF_READ_CORRUPT;
    }
    if (record->size > reader->payload_capacity) {
        size_t capacity = reader->payload_capacity ? reader->payload_capacity : 4096;
        while (capacity < record->size)
            capacity *= 2;
        uint8_t *payload = realloc(reader->payload, capacity);
        if (!payload) {
            snprintf(reader->error, sizeof reader->error, "out of memory");
            return SPROF_READ_IO_ERROR;
        }
        reader->payload = payload;
        reader->payload_capacity = capacity;
    }
    got = fread(reader->payload, 1, record->size, reader->file);
    if (got < record->size) {
        snprintf(reader->error, sizeof reader->error,
                 "trace ends inside a record at offset %llu (%zu of %u bytes)",
                 (unsigned long long)reader->offset, got, record->size);
        return ferror(reader->file) ? SPROF_READ_IO_ERROR : SPROF_READ_TRUNCATED;
    }
    record->payload = reader->payload ? reader->payload : (const uint8_t *)"";
    reader->offset += sizeof bytes + record->size;
    return SPROF_READ_RECORD;
}

void sprof_reader_close(struct sprof_reader *reader)
{
    if (reader->file)
        fclose(reader->file);
    free(reader->stdio_buffer);
    reader->stdio_buffer = NULL;
    free(reader->payload);
    reader->file = NULL;
    reader->payload = NULL;
}
