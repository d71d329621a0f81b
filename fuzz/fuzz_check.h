// CHECK for the fuzz targets: abort() with the failed condition, whatever
// NDEBUG says, so libFuzzer records the input as a crash.
#ifndef LARIAT_FUZZ_CHECK_H
#define LARIAT_FUZZ_CHECK_H

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,       \
                   __LINE__, #cond);                                    \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

#endif
