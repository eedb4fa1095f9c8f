#include "cushioncache/core/allocator.h"

#include <cstdlib>
#include <string_view>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "cushioncache/core/log.h"

namespace cushioncache {

void reuse_freed_host_memory() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_TOP_PAD_") != nullptr) return;
  if (const char* keep = std::getenv("CC_KEEP_FREED_MEMORY"); keep != nullptr && std::string_view(keep) == "0") return;
  constexpr int kTopPadBytes = 1 << 30;
  if (mallopt(M_TOP_PAD, kTopPadBytes) != 1) log::debug("mallopt(M_TOP_PAD) refused; freed host memory goes back to the kernel");
#endif
}

}  // namespace cushioncache
