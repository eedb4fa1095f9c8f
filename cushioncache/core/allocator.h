// Host allocator tuning for executables that run forward passes on CPU.
//
// Activations of a forward pass are large (attention probabilities of one 16-candidate
// search batch on stories260K are 128 MB per layer) and are freed and allocated again on
// every forward. glibc's default gives such blocks back to the kernel at once, so each
// forward page-faults its buffers in again: measured on 2 cores, two thirds of a
// search step's wall time was kernel time (docs/benchmarks.md, bench_search).
#pragma once

namespace cushioncache {

// Keeps 1 GiB of freed memory at the top of the heap for reuse (glibc M_TOP_PAD), which
// is what MALLOC_TOP_PAD_=1073741824 does. Does nothing when the user set MALLOC_TOP_PAD_
// themselves, when CC_KEEP_FREED_MEMORY=0 (glibc's defaults, e.g. to compare, or where
// 1 GiB of idle heap is too much), or on a C library without mallopt. Call once at the
// start of main(), before tensors are allocated.
void reuse_freed_host_memory();

}  // namespace cushioncache
