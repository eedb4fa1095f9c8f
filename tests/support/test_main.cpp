// Catch2 main for the suite. A test that cannot find the shared data it needs calls
// skip_test(); the process then exits with 77, which ctest reports as "skipped" instead
// of "passed". With CC_REQUIRE_DATA=1 (set by CI) a missing file fails instead.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include "cushioncache/core/log.h"
#include "support/test_support.h"

int main(int argc, char* argv[]) {
  // Progress lines would drown the test report; CC_LOG_LEVEL still overrides.
  if (std::getenv("CC_LOG_LEVEL") == nullptr) cushioncache::log::set_level(cushioncache::log::Level::kWarn);
  const int result = Catch::Session().run(argc, argv);
  if (result == 0 && cushioncache::testing::skipped_count() > 0) return 77;
  return result;
}
