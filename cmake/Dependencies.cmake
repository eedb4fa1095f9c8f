# Every dependency comes from a Debian package (scripts/setup.sh installs them) or, on
# the GPU machine, from PyTorch's bundled LibTorch plus the staged packages.
find_package(Torch REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
if(CC_BUILD_EXAMPLES OR CC_BUILD_BENCHMARKS)
  find_package(CLI11 REQUIRED)
endif()
if(CC_BUILD_TESTS)
  find_package(Catch2 2 REQUIRED)
endif()

# Without an optimised BLAS, Debian's Torch runs matmuls on the reference BLAS, about
# 25x slower; say so at configure time instead of leaving it to be found in timings.
if(TORCH_INSTALL_PREFIX STREQUAL "/usr")
  find_file(CC_OPENBLAS_PTHREAD libopenblas.so.0 PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread NO_DEFAULT_PATH)
  if(NOT CC_OPENBLAS_PTHREAD)
    message(WARNING "libopenblas0-pthread is not installed: Torch will use reference BLAS "
                    "(about 25x slower). Run scripts/setup.sh.")
  endif()
endif()
