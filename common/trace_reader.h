/* Reads a trace file record by record, checking the framing.
 *
 * Not thread-safe per reader; uses stdio and malloc. Never allocates more
 * than SPROF_RECORD_MAX_PAYLOAD for a record, whatever its header claims. */
#ifndef SPROF_TRACE_READER_H
#define SPROF_TRACE_READER_H

#include <stdint.h>
#include <stdio.h>

#include "sprof/trace_format.h"

enum sprof_read_status {
    SPROF_READ_RECORD,    /* *record is filled in */
    SPROF_READ_EOF,       /* clean end of file after a whole record */
    SPROF_READ_TRUNCATED, /* the file ends inside a record */
    SPROF_READ_CORRUPT,   /* a record header is impossible */
    SPROF_READ_IO_ERROR,
};

struct sprof_record {
    uint32_t type;
    uint32_t size;
    const uint8_t *payload; /* owned by the reader; valid until the next call */
    uint64_t offset;        /* file offset of the record header */
};

struct sprof_reader {
    FILE *file;
    struct sprof_file_header header;
    uint8_t *payload;
    size_t payload_capacity;
    uint64_t offset; /* of the next record */
    char *stdio_buffer; /* the file's, when sprof_reader_open made it */
    char error[256]; /* the reason for the last failure, one line */
};

/* Opens path and checks its file header. Returns 0, or -1 with reader->error
 * set to a reason such as "No such file or directory" or "not an sprof
 * trace". */
int sprof_reader_open(struct sprof_reader *reader, const char *path);
/* The same for an already open stream, which the reader then owns. */
int sprof_reader_open_stream(struct sprof_reader *reader, FILE *file);
/* Reads the next record. On anything but SPROF_READ_RECORD and
 * SPROF_READ_EOF, reader->error says what is wrong and where. */
enum sprof_read_status sprof_reader_next(struct sprof_reader *reader, struct sprof_record *record);
void sprof_reader_close(struct sprof_reader *reader);

#endif
