# Every dependency comes from a Debian package (scripts/setup.sh installs them) or, on
# the GPU machine, from PyTorch's bundled LibTorch plus the staged packages.

# CC_TORCH_PYTHON: a Python whose `torch` package provides LibTorch (PyTorch 2.x's wheel,
# built with CUDA; scripts/build.sh --torch pip, scripts/gpu_check.sh). Empty: the
# system's LibTorch (Debian's libtorch-dev 1.13, CPU).
set(CC_TORCH_PYTHON "" CACHE FILEPATH "Python whose torch package provides LibTorch (empty: the system LibTorch)")
set(CC_TORCH_CMAKE_DIR "")  # that LibTorch's CMake prefix, recorded in the installed package config
# The CUDA archs our kernels are compiled for. A CUDA LibTorch's CMake
# (Caffe2/public/cuda.cmake) sets CMAKE_CUDA_ARCHITECTURES to OFF in our scope and reads
# its own archs from TORCH_CUDA_ARCH_LIST, so ours are kept here and applied again after
# find_package(Torch) (CMakeLists.txt).
if(DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED CACHE{CC_CUDA_ARCHITECTURES})
  set(cc_default_archs "${CMAKE_CUDA_ARCHITECTURES}")
else()
  set(cc_default_archs "80;90a")
endif()
set(CC_CUDA_ARCHITECTURES "${cc_default_archs}" CACHE STRING "CUDA architectures of the kernels (sm_80: cp.async and int8 mma; sm_90a: H100/H200)")
if(CC_TORCH_PYTHON)
  execute_process(
    COMMAND "${CC_TORCH_PYTHON}" -c "import torch, torch.utils; print(torch.utils.cmake_prefix_path); print(torch.__version__); print(torch.version.cuda or '')"
    OUTPUT_VARIABLE cc_torch_probe ERROR_VARIABLE cc_torch_error RESULT_VARIABLE cc_torch_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT cc_torch_rc EQUAL 0)
    message(FATAL_ERROR "CC_TORCH_PYTHON=${CC_TORCH_PYTHON} cannot import torch (scripts/setup.sh python installs it):\n${cc_torch_error}")
  endif()
  string(REPLACE "\n" ";" cc_torch_probe "${cc_torch_probe}")
  list(GET cc_torch_probe 0 cc_torch_cmake_dir)
  list(GET cc_torch_probe 1 cc_torch_version)
  list(LENGTH cc_torch_probe cc_torch_fields)
  set(cc_torch_cuda "")
  if(cc_torch_fields GREATER 2)
    list(GET cc_torch_probe 2 cc_torch_cuda)
  endif()
  message(STATUS "LibTorch from PyTorch ${cc_torch_version} (CUDA ${cc_torch_cuda}) at ${cc_torch_cmake_dir}")
  list(PREPEND CMAKE_PREFIX_PATH "${cc_torch_cmake_dir}")
  set(CC_TORCH_CMAKE_DIR "${cc_torch_cmake_dir}")
  if(cc_torch_cuda AND NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    # Torch's CMake enables CUDA itself (before our own check below) and needs nvcc.
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
endif()
# Torch's CUDA CMake takes its archs from TORCH_CUDA_ARCH_LIST ("8.0;9.0a"), not from
# CMAKE_CUDA_ARCHITECTURES ("80;90a"): derive the one from the other unless it is set.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "")
  foreach(arch IN LISTS CC_CUDA_ARCHITECTURES)
    string(REGEX REPLACE "^([0-9]+)([0-9])([a-z]?)$" "\\1.\\2\\3" arch_dotted "${arch}")
    list(APPEND TORCH_CUDA_ARCH_LIST "${arch_dotted}")
  endforeach()
endif()
find_package(Torch REQUIRED)
# PyTorch's wheels export the std::filesystem functions of the libstdc++ they link in
# statically (pytorch/pytorch#133437, still so in 2.11: libtorch.so and libtorch_cpu.so).
# A program names libtorch before libstdc++, so its own std::filesystem calls bind to
# those copies, which jump to null (remove_all segfaults). Naming libstdc++ first in every
# program that links us keeps those calls in the system library; a public link option of
# the library, so that installed consumers get it too (cushioncache/CMakeLists.txt).
set(CC_LIBSTDCXX_FIRST FALSE)
find_library(CC_LIBTORCH_CPU torch_cpu PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
find_program(CC_NM nm)
if(CC_LIBTORCH_CPU AND CC_NM)
  execute_process(COMMAND "${CC_NM}" -D --defined-only "${CC_LIBTORCH_CPU}" OUTPUT_VARIABLE cc_torch_symbols ERROR_QUIET)
  if(cc_torch_symbols MATCHES " [TW] _ZNSt10filesystem")
    set(CC_LIBSTDCXX_FIRST TRUE)
    message(STATUS "LibTorch exports libstdc++'s std::filesystem: programs name libstdc++ before it")
  endif()
  unset(cc_torch_symbols)
elseif(CC_TORCH_PYTHON)
  set(CC_LIBSTDCXX_FIRST TRUE)  # no nm to look: a wheel's LibTorch is assumed to (harmless if not)
endif()

# Whether this LibTorch was built with CUDA (libtorch_cuda): the CUDA ops layer, NCCL and
# the one-runtime linking depend on it.
set(CC_TORCH_HAS_CUDA FALSE)
set(CC_HAVE_NCCL FALSE)
if(TARGET torch_cuda)
  set(CC_TORCH_HAS_CUDA TRUE)
  # One CUDA runtime and one cuBLASLt per process, the files libtorch_cuda itself loads
  # (a wheel's nvidia/*/lib), not the toolkit's second copy: two runtimes keep two sets
  # of state, and a libtorch_cuda bound to an older cuBLASLt than it was built against
  # fails. Torch's CMake links every consumer to the toolkit's cudart (torch::cudart ->
  # CUDA::cudart), so that link is redirected too. tests/cuda_runtime_libraries.cmake
  # checks the result with ldd.
  find_library(CC_LIBTORCH_CUDA torch_cuda PATHS "${TORCH_INSTALL_PREFIX}/lib" NO_DEFAULT_PATH)
  execute_process(COMMAND ldd "${CC_LIBTORCH_CUDA}" OUTPUT_VARIABLE cc_torch_cuda_ldd RESULT_VARIABLE cc_ldd_rc ERROR_QUIET)
  foreach(cc_lib cudart cublasLt nccl)
    string(TOUPPER "${cc_lib}" cc_upper)
    if(cc_torch_cuda_ldd MATCHES "lib${cc_lib}\\.so[.0-9]* => (/[^ \n]+)")
      get_filename_component(CC_TORCH_${cc_upper}_LIBRARY "${CMAKE_MATCH_1}" ABSOLUTE)
    else()
      set(CC_TORCH_${cc_upper}_LIBRARY "")
    endif()
  endforeach()
  if(NOT CC_TORCH_CUDART_LIBRARY OR NOT CC_TORCH_CUBLASLT_LIBRARY)
    message(FATAL_ERROR "ldd ${CC_LIBTORCH_CUDA} does not resolve libcudart and libcublasLt (is the wheel's "
                        "nvidia-* packages' lib folder missing?):\n${cc_torch_cuda_ldd}")
  endif()
  message(STATUS "CUDA runtime of LibTorch: ${CC_TORCH_CUDART_LIBRARY}; cuBLASLt: ${CC_TORCH_CUBLASLT_LIBRARY}")
  set_property(TARGET torch::cudart PROPERTY INTERFACE_LINK_LIBRARIES "${CC_TORCH_CUDART_LIBRARY};CUDA::toolkit")
  # NCCL (distributed/process_group.cpp): LibTorch's c10d ProcessGroupNCCL, whose header
  # needs nccl.h; the one beside the libnccl LibTorch loads, else the toolkit's.
  find_file(CC_C10D_NCCL_HEADER torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  set(cc_nccl_hints "")
  if(CC_TORCH_NCCL_LIBRARY)
    get_filename_component(cc_nccl_libdir "${CC_TORCH_NCCL_LIBRARY}" DIRECTORY)
    list(APPEND cc_nccl_hints "${cc_nccl_libdir}/../include")
  endif()
  find_path(CC_NCCL_INCLUDE_DIR nccl.h PATHS ${cc_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS} NO_DEFAULT_PATH)
  if(CC_C10D_NCCL_HEADER AND CC_NCCL_INCLUDE_DIR)
    set(CC_HAVE_NCCL TRUE)
  else()
    message(STATUS "c10d NCCL header or nccl.h not found: --dist-backend nccl unavailable")
  endif()
endif()
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
    set(cc_onednn_include "${CC_ONEDNN_INCLUDE_DIR}")
    find_file(CC_TORCH_ONEDNN_HEADER oneapi/dnnl/dnnl.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
    set(CC_ONEDNN_ISOLATED FALSE)
    if(CC_TORCH_ONEDNN_HEADER AND NOT CC_TORCH_ONEDNN_HEADER STREQUAL "${CC_ONEDNN_INCLUDE_DIR}/oneapi/dnnl/dnnl.hpp")
      # A LibTorch with its own oneDNN (PyTorch's wheel: 3.x, linked into libtorch_cpu).
      # Its headers sit in LibTorch's include folder and, as -isystem, would shadow the
      # 2.x headers of the library we use; a plain -I folder is searched first, but GCC
      # drops -I/usr/include, so the 2.x headers are reached through a link in the build
      # tree. And its symbols clash at run time (kernels/onednn_isolated.h): the 2.x
      # library is loaded on its own instead of linked.
      set(cc_onednn_include "${CMAKE_BINARY_DIR}/onednn-include")
      file(MAKE_DIRECTORY "${cc_onednn_include}")
      file(CREATE_LINK "${CC_ONEDNN_INCLUDE_DIR}/oneapi" "${cc_onednn_include}/oneapi" SYMBOLIC)
      set(CC_ONEDNN_ISOLATED TRUE)
      get_filename_component(CC_ONEDNN_LIBRARY_FILE "${CC_ONEDNN_LIBRARY}" REALPATH)
      target_link_libraries(cc_onednn INTERFACE ${CMAKE_DL_LIBS})
    else()
      target_link_libraries(cc_onednn INTERFACE "${CC_ONEDNN_LIBRARY}")
    endif()
    target_include_directories(cc_onednn INTERFACE "${cc_onednn_include}")
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
  # PyTorch's wheel ships LibTorch without Gloo's headers (its Gloo is linked in); Debian's
  # libgloo-dev is another Gloo version, so a CUDA build joins ranks over NCCL instead.
  message(STATUS "c10d Gloo headers not found beside LibTorch: multi-process CPU jobs unavailable (Debian: install libgloo-dev)")
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
