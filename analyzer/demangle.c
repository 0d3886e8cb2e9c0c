#include "demangle.h"

#include <stddef.h>
#include <string.h>

/* From libstdc++ (cxxabi.h), which every C++ toolchain ships. */
extern char *__cxa_demangle(const char *mangled, char *buffer, size_t *length, int *status);

char *sprof_demangle(const char *name)
{
    if (!name || strncmp(name, "_Z", 2) != 0)
        return NULL;
    int status = 0;
    char *readable = __cxa_demangle(name, NULL, NULL, &status);
    return status == 0 ? readable : NULL;
}
