/* sprof trace format, version 2: the one definition shared by the preload
 * (which writes traces) and the analyzer (which reads them).
 *
 * TRACE_FORMAT.md beside this file describes it in prose. In short: a
 * 32-byte file header, then a sequence of framed records. Every integer is
 * fixed-width little-endian. A record is an 8-byte header (type, payload
 * size) followed by its payload, so a reader can check and skip any record,
 * including types it does not know. The structs below give the fixed part
 * of each payload; variable parts (strings, arrays) follow it as described.
 * Structs are documentation and size checks: code encodes and decodes field
 * by field (common/trace_codec.h), never by casting bytes to structs. */
#ifndef SPROF_TRACE_FORMAT_H
#define SPROF_TRACE_FORMAT_H

#include <stdint.h>

#define SPROF_TRACE_MAGIC "sprofTRC"
#define SPROF_TRACE_MAGIC_SIZE 8
#define SPROF_TRACE_VERSION 2u
/* Oldest version a reader still accepts: 2 only added records. */
#define SPROF_TRACE_VERSION_MIN 1u

/* A reader refuses a record larger than this without allocating for it. */
#define SPROF_RECORD_MAX_PAYLOAD (1u << 20)
/* Deepest stack a trace may hold. */
#define SPROF_STACK_MAX_DEPTH 1024u
/* Longest build-id recorded for a module. */
#define SPROF_BUILD_ID_MAX 64u
/* String id 0 always means "none / unknown". */
#define SPROF_STRING_NONE 0u
/* Module id for an address that lies in no known module. */
#define SPROF_MODULE_NONE 0xffffffffu

struct sprof_file_header {
    char magic[SPROF_TRACE_MAGIC_SIZE]; /* SPROF_TRACE_MAGIC, no NUL */
    uint32_t version;                   /* SPROF_TRACE_VERSION */
    uint32_t header_size;               /* 32; later versions may grow it */
    uint64_t run_id;                    /* shared by every process of a run */
    uint32_t pid;                       /* the process that wrote this file */
    uint32_t reserved;
};
_Static_assert(sizeof(struct sprof_file_header) == 32, "file header is 32 bytes");

struct sprof_record_header {
    uint32_t type; /* enum sprof_record_type */
    uint32_t size; /* payload bytes that follow; <= SPROF_RECORD_MAX_PAYLOAD */
};
_Static_assert(sizeof(struct sprof_record_header) == 8, "record header is 8 bytes");

enum sprof_record_type {
    SPROF_REC_PROCESS = 1,
    SPROF_REC_MODULE = 2,
    SPROF_REC_THREAD = 3,
    SPROF_REC_STACK = 4,
    SPROF_REC_SAMPLES = 5,
    SPROF_REC_STRING = 6,
    SPROF_REC_SYMBOL = 7,
    SPROF_REC_SUMMARY = 8,
    SPROF_REC_NOTICE = 9,
    SPROF_REC_END = 10,
    SPROF_REC_CALL_COUNTS = 11,
    SPROF_REC_FRAMES = 12,
    SPROF_REC_NODE_SAMPLES = 13,
    SPROF_REC_CHAIN = 14,
    SPROF_REC_ADDRESS_NAMES = 15,
};

/* A string inside a payload: uint32 length, then that many bytes, no NUL. */

/* How samples were triggered. */
enum sprof_timer_kind {
    SPROF_TIMER_PERF_TASK_CLOCK = 1, /* perf_event task-clock per thread */
    SPROF_TIMER_THREAD_CPUTIME = 2,  /* timer_create(CLOCK_THREAD_CPUTIME_ID) per thread */
};

#define SPROF_PROCESS_KERNEL_SAMPLED 0x1u /* time in system calls is sampled */
#define SPROF_PROCESS_ROOT 0x2u           /* first process of the run */

/* PROCESS: once, first record. Followed by three strings: executable path,
 * command line (arguments separated by NUL bytes), settings warnings. */
struct sprof_process_record {
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_realtime_ns; /* CLOCK_REALTIME at start */
    uint32_t frequency_hz;      /* requested sampling rate */
    uint32_t timer_kind;        /* enum sprof_timer_kind */
    uint64_t period_ns;         /* CPU time between samples */
    uint32_t max_depth;         /* frames kept per stack */
    uint32_t flags;             /* SPROF_PROCESS_* */
};
_Static_assert(sizeof(struct sprof_process_record) == 40, "process record");

/* MODULE: a loaded ELF object. Followed by build_id_size bytes of build-id
 * and then a string: the file's path ("[vdso]" and the like for objects
 * without a file). An address A in [start, end) belongs to it; its offset in
 * the file's address space is A - load_bias. */
struct sprof_module_record {
    uint32_t module_id;
    uint32_t build_id_size; /* <= SPROF_BUILD_ID_MAX */
    uint64_t load_bias;
    uint64_t start;
    uint64_t end;
};
_Static_assert(sizeof(struct sprof_module_record) == 32, "module record");

/* THREAD: written when a thread ends, or at process exit for live threads.
 * Followed by a string: the thread's name. */
struct sprof_thread_record {
    uint32_t tid;
    uint32_t flags;
    uint64_t cpu_ns;   /* the thread's measured CPU time (user+system) */
    uint64_t samples;  /* samples it took */
    uint64_t weight_ns;/* CPU time those samples stand for */
};
_Static_assert(sizeof(struct sprof_thread_record) == 32, "thread record");

#define SPROF_STACK_TRUNCATED 0x1u /* deeper frames were cut at max_depth */

/* STACK: defined once, referred to by id. Followed by depth uint64
 * addresses, leaf first. The leaf is the interrupted instruction; every
 * other entry is its return address minus one, so that it lies inside the
 * call instruction and symbolizes to the calling line. */
struct sprof_stack_record {
    uint32_t stack_id;
    uint16_t depth;
    uint16_t flags; /* SPROF_STACK_* */
};
_Static_assert(sizeof(struct sprof_stack_record) == 8, "stack record");

/* SAMPLES: a batch for one thread. Followed by entry_count entries.
 * STACK and SAMPLES are version 1's records; the preload now writes FRAMES
 * and NODE_SAMPLES (below), and readers accept both. */
struct sprof_samples_record {
    uint32_t tid;
    uint32_t entry_count;
};
struct sprof_sample_entry {
    uint32_t stack_id;
    uint32_t samples;   /* how many samples hit this stack in the batch */
    uint64_t weight_ns; /* the CPU time they stand for */
};
_Static_assert(sizeof(struct sprof_samples_record) == 8, "samples record");
_Static_assert(sizeof(struct sprof_sample_entry) == 16, "sample entry");

/* Compact records (version 2). Variable-length integers are LEB128
 * (7 bits a byte, low first, high bit = more follows; at most 10 bytes);
 * "zigzag" maps a signed delta d to (d << 1) ^ (d >> 63), so small deltas of
 * either sign take one byte. common/varint.h encodes and decodes them. */

/* A frame table holds one thread's stacks as a tree of frames: node ids
 * count up from 1 within the table; node 0 is "no node". The stack a node
 * stands for is its address, then its parent's, up to a root (the
 * outermost frame). Each thread's table grows for as long as the thread
 * lives, so a stack seen again costs nothing more; when full, the thread
 * starts a new table (a new id). Table ids are unique within a trace file
 * and a table belongs to one thread. */
#define SPROF_FRAME_TABLE_MAX_NODES (1u << 20)

/* FRAMES: nodes of a table. Its payload is all varints: the table id
 * (never 0), the first node's id (>= 1), then nodes first, first + 1, ...
 * to the payload's end, each as:
 *   varint  (id - parent) << 1 | truncated   parent 0 (a root, the outermost
 *           frame) is written as 0; otherwise parent < id. truncated (roots
 *           only): frames beyond this outermost one were cut at max_depth.
 *   varint  zigzag(address - the previous node's address in this record,
 *           or - 0 for the first)
 * Addresses follow STACK's rule: the leaf node's is the interrupted
 * instruction, every other is a return address minus one. A record starts
 * where the table's previous one ended; a gap (a lost write) leaves the
 * missing nodes undefined. */

/* NODE_SAMPLES: a batch of one thread's samples, by leaf node of its
 * table, in ascending node order. Its payload is all varints: the table
 * id, the tid, the period in ns, then entries to the payload's end:
 *   varint  (node - the previous entry's node, or - 0) << 1 | more
 *           the difference is at least 1
 *   varint  samples << 1 | has_weight      only if more; else one sample
 *   varint  weight_ns                      only if has_weight; else the
 *                                          weight is samples * period
 * So the common entry, one sample near the previous one, is one byte. */

/* STRING: interned text. Followed by the bytes, up to the record's end. */
struct sprof_string_record {
    uint32_t string_id; /* never SPROF_STRING_NONE */
};
_Static_assert(sizeof(struct sprof_string_record) == 4, "string record");

#define SPROF_SYMBOL_DWARF 0x1u  /* names and lines come from DWARF */
#define SPROF_SYMBOL_ELF 0x2u    /* the name comes from an ELF symbol table */
/* No symbol: named "module+0xSTART" after the start of its function in the
 * unwind tables (.eh_frame), so a stripped function's addresses add up. */
#define SPROF_SYMBOL_UNWIND_TABLE 0x4u

/* SYMBOL: what an address means. Followed by frame_count frames, innermost
 * (inlined) first, the containing function last. frame_count 0 means the
 * address could not be named (it then shows as module+offset). */
struct sprof_symbol_record {
    uint64_t address;
    uint32_t module_id; /* SPROF_MODULE_NONE if in no module */
    uint16_t frame_count;
    uint16_t flags; /* SPROF_SYMBOL_* */
};
struct sprof_symbol_frame {
    uint32_t function;  /* string id: linkage (mangled) name if any */
    uint32_t file;      /* string id: source file of the line below */
    uint32_t line;      /* line being executed in this frame, 0 unknown */
    uint32_t decl_file; /* string id: where the function is defined */
    uint32_t decl_line;
};
_Static_assert(sizeof(struct sprof_symbol_record) == 16, "symbol record");
_Static_assert(sizeof(struct sprof_symbol_frame) == 20, "symbol frame");

/* CHAIN: what many addresses share: their module and their frames, innermost
 * (inlined) first, without the lines. Followed by frame_count frames of four
 * varints: function, file, decl_file (string ids) and decl_line, as in
 * SYMBOL. frame_count 0: addresses of the module that have no name. */
struct sprof_chain_record {
    uint32_t chain_id;  /* never 0; unique within the file */
    uint32_t module_id; /* SPROF_MODULE_NONE if in no module */
    uint16_t frame_count;
    uint16_t flags;     /* SPROF_SYMBOL_* */
};
_Static_assert(sizeof(struct sprof_chain_record) == 12, "chain record");

/* ADDRESS_NAMES: what addresses mean, in the fewest bytes; the compact
 * form of SYMBOL. Entries fill the payload, in ascending address order:
 *   varint  address - the previous entry's address (or - 0)
 *   varint  chain id (a CHAIN defined earlier in the file)
 *   varint  line, one per frame of the chain, innermost first (0 unknown) */

/* SUMMARY: at exit. Measured figures let a reader say how much of the run
 * the samples account for. */
struct sprof_summary_record {
    uint64_t wall_ns;         /* from start of profiling to exit */
    uint64_t user_ns;         /* process user CPU, profiler's own excluded */
    uint64_t system_ns;       /* process system CPU, profiler's own excluded */
    uint64_t profiler_cpu_ns; /* CPU used by sprof's writer thread */
    uint64_t max_rss_kb;      /* peak resident set size */
    uint64_t samples;         /* samples recorded */
    uint64_t weight_ns;       /* CPU time the samples stand for */
    uint64_t lost_samples;    /* dropped: buffer full, or unwinding refused */
    uint64_t truncated;       /* stacks cut at max_depth */
    uint32_t threads;         /* threads that were sampled */
    uint32_t flags;           /* reserved */
};
_Static_assert(sizeof(struct sprof_summary_record) == 80, "summary record");

/* NOTICE: something a reader of the profile should be told, for example
 * that system time was not sampled and why. Followed by a string. */
enum sprof_notice_kind {
    SPROF_NOTICE_INFO = 1,
    SPROF_NOTICE_KERNEL_EXCLUDED = 2, /* system calls are not sampled */
    SPROF_NOTICE_TIMER_FALLBACK = 3,  /* perf_event refused; CPU timers used */
    SPROF_NOTICE_SETTINGS = 4,        /* a setting was bad and ignored */
};
struct sprof_notice_record {
    uint32_t kind;
};
_Static_assert(sizeof(struct sprof_notice_record) == 4, "notice record");

/* END: the writer closed the trace cleanly. Empty payload. */

/* CALL_COUNTS: exact call counts of one thread, from the
 * -finstrument-functions hooks. A thread's counts are a snapshot; a later
 * snapshot (higher sequence) of the same thread replaces all earlier ones,
 * and one snapshot may span several records. Followed by entry_count
 * entries of the given kind. */
enum sprof_call_count_kind {
    SPROF_CALLS_FUNCTIONS = 1, /* entries: struct sprof_function_calls */
    SPROF_CALLS_EDGES = 2,     /* entries: struct sprof_edge_calls */
};
struct sprof_call_counts_record {
    uint32_t tid;
    uint32_t sequence;
    uint32_t kind;        /* enum sprof_call_count_kind */
    uint32_t entry_count;
    uint64_t dropped;     /* hook calls that could not be counted */
};
struct sprof_function_calls {
    uint64_t function;    /* the function's entry address */
    uint64_t calls;
    uint64_t primitive;   /* calls made while it was not already active */
};
struct sprof_edge_calls {
    uint64_t call_site;   /* return address in the caller, minus one */
    uint64_t callee;      /* the called function's entry address */
    uint64_t calls;
};
_Static_assert(sizeof(struct sprof_call_counts_record) == 24, "call counts record");
_Static_assert(sizeof(struct sprof_function_calls) == 24, "function calls entry");
_Static_assert(sizeof(struct sprof_edge_calls) == 24, "edge calls entry");

#endif
