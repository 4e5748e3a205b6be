/* Compute memory shared by all plans of one engine.
 *
 * Every plan's ggml scheduler allocates its intermediate tensors (inputs, activations, outputs
 * before read-back) in a compute buffer of its own. Plans of one engine never compute at the
 * same time (the engine's lock), and nothing in that buffer outlives a run, so they can all use
 * the same memory: a scratch pool is a host buffer type whose buffers are windows onto one
 * shared block. A new session signature (a KV cache one token longer) then reuses memory that is
 * already faulted in instead of mapping and zeroing fresh pages, and the plans a session keeps
 * cost the largest one's scratch, not the sum.
 *
 * A window larger than the current block gets a new block (half as large again as asked, so a
 * growing signature is not reallocated every step); the old one is freed with its last window.
 * Buffers are made and freed with the GIL held (plan build and dealloc), which serialises them.
 */
#pragma once
#include <stddef.h>
#include "ggml-backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ggonnx_scratch ggonnx_scratch;

/* A pool whose buffers behave as ``base``'s (a host buffer type: its alignment and device). */
ggonnx_scratch * ggonnx_scratch_new(ggml_backend_buffer_type_t base, const char * name);
/* The owner lets go; the memory goes when the last window does. */
void ggonnx_scratch_release(ggonnx_scratch * pool);
ggml_backend_buffer_type_t ggonnx_scratch_buft(ggonnx_scratch * pool);
/* Blocks allocated so far. */
size_t ggonnx_scratch_blocks_made(const ggonnx_scratch * pool);

#ifdef __cplusplus
}
#endif
