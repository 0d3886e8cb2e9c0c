/* The interface between libsprof.so and libsprof-names.so, the library that
 * names the trace's addresses at exit. It is a library of its own so that
 * libdw and libelf (and their compression libraries) are loaded, with
 * dlopen, only by a process that ends with samples to name: every process
 * the preload starts (shell scripts start hundreds) is spared loading them. */
#ifndef SPROF_EXIT_NAMES_H
#define SPROF_EXIT_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define SPROF_NAMES_LIBRARY "libsprof-names.so"
#define SPROF_NAMES_ENTRY "sprof_names_write"

struct sprof_module_list;

/* Reads the addresses of every stack back from the trace file at path, names
 * them with libdw, and hands STRING, CHAIN and ADDRESS_NAMES records to
 * append, each whole. libdw out of memory calls out_of_memory, which does
 * not return (libdw's own handler would end the program with exit(1)).
 * NOT async-signal-safe. */
typedef void sprof_names_write_fn(const char *path, const struct sprof_module_list *modules,
                                  bool (*append)(const void *bytes, size_t size),
                                  void (*out_of_memory)(void) __attribute__((noreturn)));

#endif
