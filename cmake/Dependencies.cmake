# Every dependency comes from a Debian package (scripts/setup.sh installs them) or, on
# the GPU machine, from PyTorch's bundled LibTorch plus the staged packages.
find_package(Torch REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# oneDNN's int8 matmul is the CPU INT8 GEMM (kernels/int8_gemm.h), written for the 2.x
# API (output scales) that Debian 12 ships. Found by header and library rather than by
# its CMake package: Debian's package config demands the OpenCL SDK for its GPU runtime,
# which the CPU path never touches. Without it the CPU INT8 path reports itself unsupported.
find_path(CC_ONEDNN_INCLUDE_DIR oneapi/dnnl/dnnl.hpp)
find_library(CC_ONEDNN_LIBRARY dnnl)
set(CC_HAVE_ONEDNN FALSE)
if(CC_ONEDNN_INCLUDE_DIR AND CC_ONEDNN_LIBRARY)
  file(STRINGS "${CC_ONEDNN_INCLUDE_DIR}/oneapi/dnnl/dnnl_version.h" cc_onednn_major REGEX "#define DNNL_VERSION_MAJOR ")
  string(REGEX MATCH "[0-9]+" cc_onednn_major "${cc_onednn_major}")
  if(cc_onednn_major EQUAL 2)
    set(CC_HAVE_ONEDNN TRUE)
    add_library(cc_onednn INTERFACE)
    target_include_directories(cc_onednn INTERFACE "${CC_ONEDNN_INCLUDE_DIR}")
    target_link_libraries(cc_onednn INTERFACE "${CC_ONEDNN_LIBRARY}")
  else()
    message(WARNING "oneDNN ${cc_onednn_major}.x found; the CPU INT8 GEMM is written for the 2.x API and is left out")
  endif()
endif()
if(NOT CC_HAVE_ONEDNN)
  message(STATUS "oneDNN 2.x not found: CPU INT8 GEMM unavailable (install libdnnl-dev)")
endif()
# Multi-process search and tuning (distributed/process_group.h) use LibTorch's own c10d
# Gloo process group; its header needs Gloo's headers (libgloo-dev; LibTorch itself links
# libgloo). Without them a job with WORLD_SIZE > 1 reports itself unsupported.
find_file(CC_C10D_GLOO_HEADER torch/csrc/distributed/c10d/ProcessGroupGloo.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
# Only beside the LibTorch in use: another Gloo version would not match its c10d header.
find_path(CC_GLOO_INCLUDE_DIR gloo/config.h PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
set(CC_HAVE_GLOO FALSE)
if(CC_C10D_GLOO_HEADER AND CC_GLOO_INCLUDE_DIR)
  set(CC_HAVE_GLOO TRUE)
else()
  message(STATUS "c10d Gloo headers not found: multi-process search unavailable (install libgloo-dev)")
endif()
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
