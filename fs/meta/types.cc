#include "meta/types.h"

#include <sys/random.h>

#include <ctime>
#include <random>

namespace tempfs {

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t NewGeneration() {
  uint64_t g = 0;
  // The kernel keeps the low 32 bits (i_generation): those must vary.
  while (static_cast<uint32_t>(g) <= 1) {
    if (getrandom(&g, sizeof g, 0) != static_cast<ssize_t>(sizeof g)) {
      static thread_local std::mt19937_64 fallback{std::random_device{}()};
      g = fallback();
    }
  }
  return g;
}

}  // namespace tempfs
