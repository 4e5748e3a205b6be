/* Scratch pools: see scratch.h. */
#include <stdlib.h>
#include <string.h>
#include "ggml-backend-impl.h"
#include "scratch.h"

#define BLOCK_ALIGN 64
#define BLOCK_ROUND ((size_t) 1 << 20)

struct block {
    ggonnx_scratch * pool;
    char * data;
    size_t size;
    int windows;              /* live buffers on it */
};

struct ggonnx_scratch {
    struct ggml_backend_buffer_type buft;   /* first, so &pool->buft is the buffer type */
    ggml_backend_buffer_type_t base;
    const char * name;
    struct block * current;   /* where new windows go; NULL before the first */
    size_t blocks_made;
    int refs;                 /* the owner + live windows */
};

static void pool_unref(ggonnx_scratch * pool) {
    if (--pool->refs == 0) {
        if (pool->current != NULL) {   /* no windows left: nothing points into it */
            free(pool->current->data);
            free(pool->current);
        }
        free(pool);
    }
}

static void window_free(ggml_backend_buffer_t buffer) {
    struct block * b = (struct block *) buffer->context;
    ggonnx_scratch * pool = b->pool;
    if (--b->windows == 0 && b != pool->current) {
        free(b->data);
        free(b);
    }
    pool_unref(pool);
}

static void * window_base(ggml_backend_buffer_t buffer) {
    return ((struct block *) buffer->context)->data;
}

static void window_memset(ggml_backend_buffer_t buffer, struct ggml_tensor * t, uint8_t value, size_t offset,
                          size_t size) {
    (void) buffer;
    memset((char *) t->data + offset, value, size);
}

static void window_set(ggml_backend_buffer_t buffer, struct ggml_tensor * t, const void * data, size_t offset,
                       size_t size) {
    (void) buffer;
    memcpy((char *) t->data + offset, data, size);
}

static void window_get(ggml_backend_buffer_t buffer, const struct ggml_tensor * t, void * data, size_t offset,
                       size_t size) {
    (void) buffer;
    memcpy(data, (const char *) t->data + offset, size);
}

static bool window_copy(ggml_backend_buffer_t buffer, const struct ggml_tensor * src, struct ggml_tensor * dst) {
    (void) buffer;
    if (!ggml_backend_buffer_is_host(src->buffer)) {
        return false;
    }
    memcpy(dst->data, src->data, ggml_nbytes(src));
    return true;
}

static void window_clear(ggml_backend_buffer_t buffer, uint8_t value) {
    memset(window_base(buffer), value, buffer->size);
}

static const struct ggml_backend_buffer_i window_iface = {
    /* .free_buffer   = */ window_free,
    /* .get_base      = */ window_base,
    /* .init_tensor   = */ NULL,
    /* .memset_tensor = */ window_memset,
    /* .set_tensor    = */ window_set,
    /* .get_tensor    = */ window_get,
    /* .set_tensor_2d = */ NULL,
    /* .get_tensor_2d = */ NULL,
    /* .cpy_tensor    = */ window_copy,
    /* .clear         = */ window_clear,
    /* .reset         = */ NULL,
};

static struct block * new_block(ggonnx_scratch * pool, size_t size) {
    struct block * b = (struct block *) calloc(1, sizeof *b);
    void * data = NULL;
    if (b == NULL || posix_memalign(&data, BLOCK_ALIGN, size) != 0) {
        free(b);
        return NULL;
    }
    b->pool = pool;
    b->data = (char *) data;
    b->size = size;
    pool->blocks_made++;
    return b;
}

static ggml_backend_buffer_t pool_alloc(ggml_backend_buffer_type_t buft, size_t size) {
    ggonnx_scratch * pool = (ggonnx_scratch *) buft->context;
    struct block * b = pool->current;
    if (b == NULL || b->size < size) {
        size_t want = size + size / 2;
        if (b != NULL && want < b->size + b->size / 2) {
            want = b->size + b->size / 2;
        }
        want = (want + BLOCK_ROUND - 1) / BLOCK_ROUND * BLOCK_ROUND;
        struct block * grown = new_block(pool, want);
        if (grown == NULL) {
            return NULL;
        }
        if (b != NULL && b->windows == 0) {
            free(b->data);
            free(b);
        }
        pool->current = b = grown;
    }
    ggml_backend_buffer_t buffer = ggml_backend_buffer_init(buft, window_iface, b, size);
    if (buffer != NULL) {
        b->windows++;
        pool->refs++;
    }
    return buffer;
}

static const char * pool_name(ggml_backend_buffer_type_t buft) {
    return ((ggonnx_scratch *) buft->context)->name;
}

static size_t pool_alignment(ggml_backend_buffer_type_t buft) {
    return ggml_backend_buft_get_alignment(((ggonnx_scratch *) buft->context)->base);
}

static bool pool_is_host(ggml_backend_buffer_type_t buft) {
    (void) buft;
    return true;
}

ggonnx_scratch * ggonnx_scratch_new(ggml_backend_buffer_type_t base, const char * name) {
    ggonnx_scratch * pool = (ggonnx_scratch *) calloc(1, sizeof *pool);
    if (pool == NULL || !ggml_backend_buft_is_host(base)) {
        free(pool);
        return NULL;
    }
    pool->buft.iface.get_name = pool_name;
    pool->buft.iface.alloc_buffer = pool_alloc;
    pool->buft.iface.get_alignment = pool_alignment;
    pool->buft.iface.is_host = pool_is_host;
    pool->buft.device = base->device;
    pool->buft.context = pool;
    pool->base = base;
    pool->name = name;
    pool->refs = 1;
    return pool;
}

void ggonnx_scratch_release(ggonnx_scratch * pool) {
    if (pool != NULL) {
        pool_unref(pool);
    }
}

ggml_backend_buffer_type_t ggonnx_scratch_buft(ggonnx_scratch * pool) {
    return &pool->buft;
}

size_t ggonnx_scratch_blocks_made(const ggonnx_scratch * pool) {
    return pool->blocks_made;
}
