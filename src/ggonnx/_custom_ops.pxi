# The rows that run our own kernels (kernels.h) as ggml custom ops, on ggml's thread pool;
# included by _core.pyx, after the Op enum.


cdef ggml_tensor * _custom_op_row(ggml_context * ctx, int op, ggml_tensor ** srcs, int64_t * ne, int64_t * p,
                                  Py_ssize_t i) except? NULL:
    """Row ``i`` of op code ``op`` (sources ``srcs``, result shape ``ne``, parameters ``p``) as one
    of our kernels; the last stop of Plan._build_one, so an op code nothing took is refused here."""
    cdef ggml_tensor * a = srcs[0]
    cdef ggml_tensor * b = srcs[1]
    cdef ggml_tensor * c = srcs[2]
    cdef ggml_tensor * d = srcs[3]
    cdef ggml_tensor * t
    cdef ggml_tensor * args[4]
    cdef int n_args
    if op == IM2COL_NHWC:
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_im2col_nhwc,
                              GGML_N_TASKS_MAX, p)
    if op == POOL_NHWC:
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_pool_nhwc,
                              GGML_N_TASKS_MAX, p)
    if op == GLOBAL_POOL_NHWC:
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_global_pool_nhwc,
                              GGML_N_TASKS_MAX, p)
    if (op == GEMM_PACKED or op == CONV_PACKED) and p[P_INTO]:
        # a channel slice written in place into src3 (the tensor being filled), seen with this row's shape
        if d == NULL or not ggml_is_contiguous(d) or ggml_nelements(d) != ne[0] * ne[1] * ne[2] * ne[3]:
            raise GraphBuildError(f"row {i}: channel slice into an unusable tensor")
        args[0], args[1], args[2] = a, b, c
        t = ggml_custom_inplace(ctx, ggml_reshape_4d(ctx, d, ne[0], ne[1], ne[2], ne[3]), args,
                                3 if c != NULL else 2,
                                ggonnx_gemm_packed if op == GEMM_PACKED else ggonnx_conv_packed,
                                GGML_N_TASKS_MAX, p)
        _name_row(t, i)  # a view's name otherwise: profiles find rows by name
        return t
    if op == GEMM_PACKED or op == CONV_PACKED or op == CONV_NARROW or op == DEPTHWISE:
        # src2 bias and src3 residual are optional; an absent bias before a residual is passed as NULL
        args[0], args[1], args[2], args[3] = a, b, c, d
        n_args = 4 if d != NULL else 3 if c != NULL else 2
        if d != NULL and not ggml_is_contiguous(d):
            args[3] = ggml_cont(ctx, d)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, n_args,
                              ggonnx_gemm_packed if op == GEMM_PACKED else ggonnx_conv_packed
                              if op == CONV_PACKED else ggonnx_conv_narrow if op == CONV_NARROW
                              else ggonnx_conv_dw, GGML_N_TASKS_MAX, p)
    if op == GEMM_AMX_BF16:
        if not ggml_is_contiguous(b):
            b = ggml_cont(ctx, b)
        args[0], args[1] = a, b
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 2, ggonnx_gemm_amx_bf16,
                              GGML_N_TASKS_MAX, p)
    if op == PACK_PANELS:  # any strides: a transposed source is gathered per panel (kernels.c)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_pack_panels,
                              GGML_N_TASKS_MAX, p)
    if op == CONCAT_C:
        n_args = 0
        for k in range(4):
            if srcs[k] != NULL:
                args[n_args] = srcs[k] if srcs[k].nb[0] == sizeof(float) else ggml_cont(ctx, srcs[k])
                n_args += 1
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, n_args,
                              ggonnx_concat_channels, GGML_N_TASKS_MAX, p)
    if op == ARG_EXTREME:
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_arg_extreme,
                              GGML_N_TASKS_MAX, p)
    if op == LOOKUP:
        args[0] = a if ggml_is_contiguous(a) else ggml_cont(ctx, a)
        args[1] = b if ggml_is_contiguous(b) else ggml_cont(ctx, b)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 2, ggonnx_lookup,
                              GGML_N_TASKS_MAX, p)
    if op == TAKE_COLUMNS:
        args[0] = a if ggml_is_contiguous(a) else ggml_cont(ctx, a)
        args[1] = b if ggml_is_contiguous(b) else ggml_cont(ctx, b)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 2, ggonnx_take_columns,
                              GGML_N_TASKS_MAX, p)
    if op == NORM_AFFINE:
        if b == NULL or ggml_nelements(b) != ne[0] or (c != NULL and ggml_nelements(c) != ne[0]):
            raise GraphBuildError(f"row {i}: NORM_AFFINE needs a scale (and bias) of {ne[0]} values")
        args[0] = a if ggml_is_contiguous(a) else ggml_cont(ctx, a)
        args[1] = b if ggml_is_contiguous(b) else ggml_cont(ctx, b)
        args[2] = c if c == NULL or ggml_is_contiguous(c) else ggml_cont(ctx, c)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 3 if c != NULL else 2,
                              ggonnx_norm_affine, GGML_N_TASKS_MAX, p)
    if op == ONE_HOT:
        args[0] = a if ggml_is_contiguous(a) else ggml_cont(ctx, a)
        args[1] = b if ggml_is_contiguous(b) else ggml_cont(ctx, b)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 2, ggonnx_one_hot,
                              GGML_N_TASKS_MAX, p)
    if op == TRANSPOSE2D:
        if not ggml_is_contiguous(a):
            a = ggml_cont(ctx, a)
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], &a, 1, ggonnx_transpose2d,
                              GGML_N_TASKS_MAX, p)
    if op == ACTIVATION:
        # src2 bias panels and src3 residual are optional (an epilogue over a matmul's rows)
        args[0], args[1], args[2] = a, c, d
        for k in (0, 2):
            if args[k] != NULL and not ggml_is_contiguous(args[k]):
                args[k] = ggml_cont(ctx, args[k])
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args,
                              3 if d != NULL else 2 if c != NULL else 1, ggonnx_activation,
                              GGML_N_TASKS_MAX, p)
    if op == RESIZE or op == COL2IM_NHWC or op == PAD_MODE:
        if a.nb[0] != sizeof(float):  # the kernels read ne0 contiguously
            a = ggml_cont(ctx, a)
        args[0], args[1] = a, b
        return ggml_custom_4d(ctx, GGML_TYPE_F32, ne[0], ne[1], ne[2], ne[3], args, 2 if b != NULL else 1,
                              ggonnx_resize if op == RESIZE else ggonnx_col2im_nhwc if op == COL2IM_NHWC
                              else ggonnx_pad, GGML_N_TASKS_MAX, p)
    raise GraphBuildError(f"row {i}: unknown op code {op}")
