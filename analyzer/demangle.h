/* C++ (Itanium ABI) demangling of linkage names. */
#ifndef SPROF_DEMANGLE_H
#define SPROF_DEMANGLE_H

/* Returns a malloc'd readable name for a mangled one, or NULL when name is
 * not mangled or cannot be demangled (then show it as it is). */
char *sprof_demangle(const char *name);

#endif
