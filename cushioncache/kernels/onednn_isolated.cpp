// Compiled only in builds against a LibTorch that carries its own oneDNN (CC_ONEDNN_ISOLATED).
// The dnnl_* functions defined here serve int8_gemm_cpu.cpp (through dnnl.hpp) and
// nothing outside this library: declared hidden, so they are not exported.
#include "cushioncache/kernels/onednn_isolated.h"

#include <dlfcn.h>

#pragma GCC visibility push(hidden)
#include <oneapi/dnnl/dnnl.h>
#pragma GCC visibility pop

#include "cushioncache/core/error.h"

#ifndef CC_ONEDNN_LIBRARY_FILE
#define CC_ONEDNN_LIBRARY_FILE "libdnnl.so.2"
#endif

namespace cushioncache::kernels {
namespace {

struct Library {
  void* handle = nullptr;
  std::string error;

  Library() {
    // DEEPBIND: the library's own symbols before the process's, so its call_once thunks
    // and template instances are its own, not libtorch_cpu's.
    for (const char* name : {CC_ONEDNN_LIBRARY_FILE, "libdnnl.so.2"}) {
      handle = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle != nullptr) return;
      const char* text = dlerror();
      error += fmt::format("{}{}", error.empty() ? "" : "; ", text != nullptr ? text : name);
    }
  }
};

const Library& library() {
  static const Library loaded;
  return loaded;
}

template <typename Function>
Function* resolve(const char* name) {
  const Library& l = library();
  if (l.handle == nullptr)
    throw_error(ErrorKind::kUnsupported, "the CPU INT8 GEMM needs oneDNN 2.x (libdnnl.so.2), which could not be loaded: {}", l.error);
  void* symbol = dlsym(l.handle, name);
  if (symbol == nullptr) throw_error(ErrorKind::kUnsupported, "oneDNN ({}) has no {}", CC_ONEDNN_LIBRARY_FILE, name);
  return reinterpret_cast<Function*>(symbol);
}

}  // namespace

bool isolated_onednn_loaded(std::string* why) {
  const Library& l = library();
  if (l.handle == nullptr && why != nullptr) *why = l.error;
  return l.handle != nullptr;
}

}  // namespace cushioncache::kernels

// Each forwards to the loaded library's function of the same name, looked up once.
#define CC_ONEDNN_FORWARD(name, params, args)                                                         \
  extern "C" auto name params -> decltype(::name args) {                                              \
    static auto* const function = cushioncache::kernels::resolve<decltype(::name)>(#name);           \
    return function args;                                                                             \
  }
#define CC_P(...) (__VA_ARGS__)

CC_ONEDNN_FORWARD(dnnl_engine_create, CC_P(dnnl_engine_t* engine, dnnl_engine_kind_t kind, size_t index), CC_P(engine, kind, index))
CC_ONEDNN_FORWARD(dnnl_engine_destroy, CC_P(dnnl_engine_t engine), CC_P(engine))
CC_ONEDNN_FORWARD(dnnl_stream_create, CC_P(dnnl_stream_t* stream, dnnl_engine_t engine, unsigned flags), CC_P(stream, engine, flags))
CC_ONEDNN_FORWARD(dnnl_stream_destroy, CC_P(dnnl_stream_t stream), CC_P(stream))
CC_ONEDNN_FORWARD(dnnl_stream_wait, CC_P(dnnl_stream_t stream), CC_P(stream))
CC_ONEDNN_FORWARD(dnnl_memory_desc_init_by_tag,
                  CC_P(dnnl_memory_desc_t* memory_desc, int ndims, const dnnl_dims_t dims, dnnl_data_type_t data_type, dnnl_format_tag_t tag),
                  CC_P(memory_desc, ndims, dims, data_type, tag))
CC_ONEDNN_FORWARD(dnnl_memory_create, CC_P(dnnl_memory_t* memory, const dnnl_memory_desc_t* memory_desc, dnnl_engine_t engine, void* handle),
                  CC_P(memory, memory_desc, engine, handle))
CC_ONEDNN_FORWARD(dnnl_memory_destroy, CC_P(dnnl_memory_t memory), CC_P(memory))
CC_ONEDNN_FORWARD(dnnl_primitive_attr_create, CC_P(dnnl_primitive_attr_t* attr), CC_P(attr))
CC_ONEDNN_FORWARD(dnnl_primitive_attr_destroy, CC_P(dnnl_primitive_attr_t attr), CC_P(attr))
CC_ONEDNN_FORWARD(dnnl_primitive_attr_set_output_scales, CC_P(dnnl_primitive_attr_t attr, dnnl_dim_t count, int mask, const float* scales),
                  CC_P(attr, count, mask, scales))
CC_ONEDNN_FORWARD(dnnl_primitive_attr_set_zero_points,
                  CC_P(dnnl_primitive_attr_t attr, int arg, dnnl_dim_t count, int mask, const int32_t* zero_points),
                  CC_P(attr, arg, count, mask, zero_points))
CC_ONEDNN_FORWARD(dnnl_matmul_desc_init,
                  CC_P(dnnl_matmul_desc_t* matmul_desc, const dnnl_memory_desc_t* src_desc, const dnnl_memory_desc_t* weights_desc,
                       const dnnl_memory_desc_t* bias_desc, const dnnl_memory_desc_t* dst_desc),
                  CC_P(matmul_desc, src_desc, weights_desc, bias_desc, dst_desc))
CC_ONEDNN_FORWARD(dnnl_primitive_desc_iterator_create,
                  CC_P(dnnl_primitive_desc_iterator_t* iterator, const_dnnl_op_desc_t op_desc, const_dnnl_primitive_attr_t attr,
                       dnnl_engine_t engine, const_dnnl_primitive_desc_t hint_forward_primitive_desc),
                  CC_P(iterator, op_desc, attr, engine, hint_forward_primitive_desc))
CC_ONEDNN_FORWARD(dnnl_primitive_desc_iterator_fetch, CC_P(const_dnnl_primitive_desc_iterator_t iterator), CC_P(iterator))
CC_ONEDNN_FORWARD(dnnl_primitive_desc_iterator_destroy, CC_P(dnnl_primitive_desc_iterator_t iterator), CC_P(iterator))
CC_ONEDNN_FORWARD(dnnl_primitive_desc_destroy, CC_P(dnnl_primitive_desc_t primitive_desc), CC_P(primitive_desc))
CC_ONEDNN_FORWARD(dnnl_primitive_create, CC_P(dnnl_primitive_t* primitive, const_dnnl_primitive_desc_t primitive_desc),
                  CC_P(primitive, primitive_desc))
CC_ONEDNN_FORWARD(dnnl_primitive_execute, CC_P(const_dnnl_primitive_t primitive, dnnl_stream_t stream, int nargs, const dnnl_exec_arg_t* args),
                  CC_P(primitive, stream, nargs, args))
CC_ONEDNN_FORWARD(dnnl_primitive_destroy, CC_P(dnnl_primitive_t primitive), CC_P(primitive))
