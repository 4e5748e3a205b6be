# Declarations of the part of ggml's C API that _core.pyx uses, nothing more.
from libc.stdint cimport int64_t, int32_t, uint32_t

cdef extern from "ggml.h" nogil:
    ctypedef enum ggml_type:
        GGML_TYPE_F32
        GGML_TYPE_F16
        GGML_TYPE_I32

    ctypedef enum ggml_op_pool:
        GGML_OP_POOL_MAX
        GGML_OP_POOL_AVG

    ctypedef enum ggml_op:
        GGML_OP_NONE
        GGML_OP_RESHAPE
        GGML_OP_VIEW
        GGML_OP_PERMUTE
        GGML_OP_TRANSPOSE
        GGML_OP_MUL_MAT

    ctypedef enum ggml_status:
        GGML_STATUS_SUCCESS

    ctypedef enum ggml_log_level:
        GGML_LOG_LEVEL_WARN
        GGML_LOG_LEVEL_ERROR

    cdef struct ggml_tensor:
        ggml_type type
        int64_t ne[4]
        size_t nb[4]
        int op
        ggml_tensor * src[10]  # GGML_MAX_SRC
        ggml_tensor * view_src
        size_t view_offs
        void * data
        char name[64]
        void * extra
        void * buffer  # struct ggml_backend_buffer *

    cdef struct ggml_context:
        pass
    cdef struct ggml_cgraph:
        pass

    cdef struct ggml_init_params:
        size_t mem_size
        void * mem_buffer
        bint no_alloc

    cdef struct ggml_threadpool_params:
        int n_threads
        uint32_t poll
        bint paused
    cdef struct ggml_threadpool:
        pass

    ctypedef void (*ggml_log_callback)(ggml_log_level level, const char * text, void * user_data)
    void ggml_log_set(ggml_log_callback cb, void * user_data)

    ctypedef void (*ggml_to_float_t)(const void * x, float * y, int64_t k)
    cdef struct ggml_type_traits:
        const char * type_name
        int64_t blck_size
        size_t type_size
        bint is_quantized
        ggml_to_float_t to_float
    const ggml_type_traits * ggml_get_type_traits(ggml_type type)
    int GGML_TYPE_COUNT
    size_t ggml_row_size(ggml_type type, int64_t ne)
    bint ggml_quantize_requires_imatrix(ggml_type type)
    size_t ggml_quantize_chunk(ggml_type type, const float * src, void * dst, int64_t start, int64_t nrows,
                               int64_t n_per_row, const float * imatrix)
    bint ggml_validate_row_data(ggml_type type, const void * data, size_t nbytes)

    const char * ggml_version()
    const char * ggml_commit()
    size_t ggml_tensor_overhead()
    size_t ggml_graph_overhead_custom(size_t size, bint grads)
    size_t ggml_nbytes(const ggml_tensor * t)
    const char * ggml_op_desc(const ggml_tensor * t)
    ggml_tensor * ggml_format_name(ggml_tensor * tensor, const char * fmt, ...)
    bint ggml_is_contiguous(const ggml_tensor * t)
    bint ggml_is_transposed(const ggml_tensor * t)
    bint ggml_can_repeat(const ggml_tensor * t0, const ggml_tensor * t1)
    int64_t ggml_nelements(const ggml_tensor * t)

    ggml_context * ggml_init(ggml_init_params params)
    void ggml_free(ggml_context * ctx)
    void ggml_reset(ggml_context * ctx)
    ggml_cgraph * ggml_new_graph_custom(ggml_context * ctx, size_t size, bint grads)
    void ggml_build_forward_expand(ggml_cgraph * g, ggml_tensor * t)
    int ggml_graph_n_nodes(ggml_cgraph * g)
    ggml_tensor * ggml_graph_node(ggml_cgraph * g, int i)
    ggml_tensor ** ggml_graph_nodes(ggml_cgraph * g)

    ggml_tensor * ggml_new_tensor_4d(ggml_context * ctx, ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)
    void ggml_set_input(ggml_tensor * t)
    void ggml_set_output(ggml_tensor * t)

    ggml_tensor * ggml_add(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_sub(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_mul(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_div(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_repeat_4d(ggml_context * ctx, ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)
    ggml_tensor * ggml_relu(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_tanh(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_exp(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_log(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_abs(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_neg(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_sqrt(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_sqr(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_sin(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_cos(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_silu(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_floor(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_ceil(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_sgn(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_softplus(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_sigmoid(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_step(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_elu(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_leaky_relu(ggml_context * ctx, ggml_tensor * a, float negative_slope, bint inplace)
    ggml_tensor * ggml_clamp(ggml_context * ctx, ggml_tensor * a, float min, float max)
    ggml_tensor * ggml_norm(ggml_context * ctx, ggml_tensor * a, float eps)
    ggml_tensor * ggml_rms_norm(ggml_context * ctx, ggml_tensor * a, float eps)
    ggml_tensor * ggml_sum_rows(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_scale_bias(ggml_context * ctx, ggml_tensor * a, float s, float b)
    ggml_tensor * ggml_soft_max(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_mean(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_mul_mat(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_out_prod(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_get_rows(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b)
    ggml_tensor * ggml_cont(ggml_context * ctx, ggml_tensor * a)
    ggml_tensor * ggml_reshape_4d(ggml_context * ctx, ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)
    ggml_tensor * ggml_permute(ggml_context * ctx, ggml_tensor * a, int axis0, int axis1, int axis2, int axis3)
    ggml_tensor * ggml_view_4d(ggml_context * ctx, ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
                               size_t nb1, size_t nb2, size_t nb3, size_t offset)
    ggml_tensor * ggml_im2col(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b, int s0, int s1, int p0, int p1,
                              int d0, int d1, bint is_2D, ggml_type dst_type)
    ggml_tensor * ggml_conv_2d_dw_direct(ggml_context * ctx, ggml_tensor * a, ggml_tensor * b, int s0, int s1,
                                         int p0, int p1, int d0, int d1)
    ggml_tensor * ggml_pool_2d(ggml_context * ctx, ggml_tensor * a, ggml_op_pool op, int k0, int k1, int s0, int s1,
                               float p0, float p1)
    ggml_tensor * ggml_pad_ext(ggml_context * ctx, ggml_tensor * a, int lp0, int rp0, int lp1, int rp1,
                               int lp2, int rp2, int lp3, int rp3)

    ctypedef void (*ggml_custom_op_t)(ggml_tensor * dst, int ith, int nth, void * userdata)
    int GGML_N_TASKS_MAX
    ggml_tensor * ggml_custom_4d(ggml_context * ctx, ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2,
                                 int64_t ne3, ggml_tensor ** args, int n_args, ggml_custom_op_t fun, int n_tasks,
                                 void * userdata)
    ggml_tensor * ggml_custom_inplace(ggml_context * ctx, ggml_tensor * a, ggml_tensor ** args, int n_args,
                                      ggml_custom_op_t fun, int n_tasks, void * userdata)

    ggml_threadpool_params ggml_threadpool_params_default(int n_threads)

cdef extern from "ggml-backend.h" nogil:
    ctypedef struct ggml_backend:
        pass
    ctypedef ggml_backend * ggml_backend_t
    ctypedef struct ggml_backend_buffer:
        pass
    ctypedef ggml_backend_buffer * ggml_backend_buffer_t
    ctypedef struct ggml_backend_buffer_type:
        pass
    ctypedef ggml_backend_buffer_type * ggml_backend_buffer_type_t
    ctypedef struct ggml_backend_sched:
        pass
    ctypedef ggml_backend_sched * ggml_backend_sched_t
    ctypedef struct ggml_backend_reg:
        pass
    ctypedef ggml_backend_reg * ggml_backend_reg_t
    ctypedef struct ggml_backend_device:
        pass
    ctypedef ggml_backend_device * ggml_backend_dev_t

    ctypedef enum ggml_backend_buffer_usage:
        GGML_BACKEND_BUFFER_USAGE_WEIGHTS

    const char * ggml_backend_name(ggml_backend_t backend)
    void ggml_backend_free(ggml_backend_t backend)
    bint ggml_backend_supports_op(ggml_backend_t backend, const ggml_tensor * op)
    void ggml_backend_buffer_free(ggml_backend_buffer_t buf)
    size_t ggml_backend_buffer_get_size(ggml_backend_buffer_t buf)
    void ggml_backend_buffer_set_usage(ggml_backend_buffer_t buf, ggml_backend_buffer_usage usage)
    void ggml_backend_tensor_set(ggml_tensor * t, const void * data, size_t offset, size_t size)
    void ggml_backend_tensor_get(const ggml_tensor * t, void * data, size_t offset, size_t size)

    ggml_backend_sched_t ggml_backend_sched_new(ggml_backend_t * backends, ggml_backend_buffer_type_t * bufts,
                                                int n_backends, size_t graph_size, bint parallel, bint op_offload)
    void ggml_backend_sched_free(ggml_backend_sched_t sched)
    void ggml_backend_sched_reset(ggml_backend_sched_t sched)
    bint ggml_backend_sched_alloc_graph(ggml_backend_sched_t sched, ggml_cgraph * graph)
    bint ggml_backend_sched_reserve(ggml_backend_sched_t sched, ggml_cgraph * measure_graph)
    ggml_status ggml_backend_sched_graph_compute(ggml_backend_sched_t sched, ggml_cgraph * graph)
    void ggml_backend_sched_set_tensor_backend(ggml_backend_sched_t sched, ggml_tensor * node, ggml_backend_t backend)
    ggml_backend_t ggml_backend_sched_get_tensor_backend(ggml_backend_sched_t sched, ggml_tensor * node)
    int ggml_backend_sched_get_n_splits(ggml_backend_sched_t sched)
    size_t ggml_backend_sched_get_buffer_size(ggml_backend_sched_t sched, ggml_backend_t backend)
    ctypedef bint (*ggml_backend_sched_eval_callback)(ggml_tensor * t, bint ask, void * user_data) noexcept nogil
    void ggml_backend_sched_set_eval_callback(ggml_backend_sched_t sched, ggml_backend_sched_eval_callback callback,
                                              void * user_data)

    size_t ggml_backend_reg_count()
    ggml_backend_reg_t ggml_backend_reg_get(size_t i)
    const char * ggml_backend_reg_name(ggml_backend_reg_t reg)
    size_t ggml_backend_dev_count()
    ggml_backend_dev_t ggml_backend_dev_get(size_t i)
    const char * ggml_backend_dev_name(ggml_backend_dev_t dev)
    const char * ggml_backend_dev_description(ggml_backend_dev_t dev)
    const char * ggml_backend_buft_name(ggml_backend_buffer_type_t buft)
    ggml_backend_buffer_type_t ggml_backend_buffer_get_type(ggml_backend_buffer_t buffer)
    ggml_backend_dev_t ggml_backend_reg_dev_get(ggml_backend_reg_t reg, size_t index)
    void * ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char * name)
    ctypedef ggml_backend_buffer_type_t * (*ggml_backend_dev_get_extra_bufts_t)(ggml_backend_dev_t device)

cdef extern from "scratch.h" nogil:
    ctypedef struct ggonnx_scratch:
        pass
    ggonnx_scratch * ggonnx_scratch_new(ggml_backend_buffer_type_t base, const char * name)
    void ggonnx_scratch_release(ggonnx_scratch * pool)
    ggml_backend_buffer_type_t ggonnx_scratch_buft(ggonnx_scratch * pool)
    size_t ggonnx_scratch_blocks_made(const ggonnx_scratch * pool)

cdef extern from "ggml-alloc.h" nogil:
    ggml_backend_buffer_t ggml_backend_alloc_ctx_tensors(ggml_context * ctx, ggml_backend_t backend)
    ggml_backend_buffer_t ggml_backend_alloc_ctx_tensors_from_buft(ggml_context * ctx, ggml_backend_buffer_type_t buft)

cdef extern from "ggml-cpu.h" nogil:
    ggml_backend_t ggml_backend_cpu_init()
    ggml_backend_buffer_type_t ggml_backend_cpu_buffer_type()
    ggml_backend_reg_t ggml_backend_cpu_reg()
    ctypedef void (*ggml_vec_dot_t)(int n, float * s, size_t bs, const void * x, size_t bx, const void * y,
                                    size_t by, int nrc)
    ctypedef void (*ggml_from_float_t)(const float * x, void * y, int64_t k)
    cdef struct ggml_type_traits_cpu:
        ggml_from_float_t from_float
        ggml_vec_dot_t vec_dot
        ggml_type vec_dot_type
    const ggml_type_traits_cpu * ggml_get_type_traits_cpu(ggml_type type)
    void ggml_backend_cpu_set_n_threads(ggml_backend_t backend, int n_threads)
    void ggml_backend_cpu_set_threadpool(ggml_backend_t backend, ggml_threadpool * tp)
    ggml_threadpool * ggml_threadpool_new(ggml_threadpool_params * params)
    void ggml_threadpool_free(ggml_threadpool * tp)
    int ggml_cpu_has_avx2()
    int ggml_cpu_has_avx512()
    int ggml_cpu_has_avx512_vnni()
    int ggml_cpu_has_amx_int8()
    int ggml_cpu_has_avx512_bf16()
    int ggml_cpu_has_f16c()
    int ggml_cpu_has_fma()
    int ggml_cpu_has_neon()
    int ggml_cpu_has_llamafile()

cdef extern from *:
    """
    #if GGONNX_HAVE_BLAS
    #include "ggml-blas.h"
    #else
    static ggml_backend_t ggml_backend_blas_init(void) { return NULL; }
    static void ggml_backend_blas_set_n_threads(ggml_backend_t b, int n) { (void)b; (void)n; }
    #endif
    """
    ggml_backend_t ggml_backend_blas_init() nogil
    void ggml_backend_blas_set_n_threads(ggml_backend_t backend, int n_threads) nogil


cdef extern from "kernels.h" nogil:
    void ggonnx_im2col_nhwc(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_pool_nhwc(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_global_pool_nhwc(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_gemm_packed(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_conv_packed(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_resize(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_col2im_nhwc(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_pad(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_activation(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_conv_narrow(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_conv_dw(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_softmax(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_transpose2d(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_concat_channels(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_arg_extreme(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_lookup(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_one_hot(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_take_columns(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_norm_affine(ggml_tensor * dst, int ith, int nth, void * params)
    void ggonnx_pack_panels(ggml_tensor * dst, int ith, int nth, void * params)
    int ggonnx_amx_bf16_init()
    void ggonnx_gemm_amx_bf16(ggml_tensor * dst, int ith, int nth, void * params)
    int GGONNX_CONV_MAX_C
    int GGONNX_P_INTO
    int GGONNX_P_COFF
    int GGONNX_P_OC
    int GGONNX_GEMM_PANEL
    int GGONNX_NARROW_MAX_OC
    int GGONNX_ACT_NONE
    int GGONNX_ACT_CLAMP
    int GGONNX_ACT_HARDSWISH
    int GGONNX_ACT_HARDSIGMOID
    int GGONNX_ACT_SIGMOID
    int GGONNX_ACT_SILU
    int GGONNX_ACT_GELU_TANH
    int GGONNX_ACT_GELU_ERF
    int GGONNX_ACT_ROUND
