// Runtime version: the values come from the generated lariat_version.h, so
// the library and its header cannot disagree.
#include <lariat/lariat.h>

namespace {
const lariat_info kInfo = {1, LARIAT_VERSION_NUM, LARIAT_VERSION,
                           LARIAT_ABI_VERSION};
}

extern "C" LARIAT_EXTERN const lariat_info *lariat_version(int least_version) {
  return least_version > LARIAT_VERSION_NUM ? nullptr : &kInfo;
}
