#include "common/memory.h"

#include <malloc.h>

namespace tempfs {

void ReleaseFreeMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace tempfs
