"""ONNX backend tests ggonnx does not pass yet, each with its reason.

Patterns are regular expressions over the test name (which ends in _cpu).
"""
EXCLUDED = {
    r"^test_bernoulli": "random sampling: the draws cannot match the reference's",
    r"^test_scatter_with(out)?_axis_cpu$": "Scatter (deprecated in opset 11) has neither a ggml lowering "
                                           "nor an onnx.reference host kernel",
    r"^test_if_opt_cpu$": "If returning an optional sequence: the host If kernel returns the wrong branch value",
    r"^test_loop16_seq_none_cpu$": "Loop over an absent optional sequence: host kernel output type differs",
    r"^test_scan_sum_cpu$": "opset-8 Scan with an empty sequence_lens input: host kernel rejects it",
    r"^test_range_.*_expanded_cpu$": "Range expanded into a Loop with scalar scan outputs: host Loop "
                                     "returns shape (n, 1) instead of (n,)",
    r"^test_gradient_of_add(_and_mul)?_cpu$": "ai.onnx.preview.training Gradient is a training op: "
                                              "no ggml lowering and no onnx.reference kernel",
    r"^test_attention_4d_causal_fp16_expanded_cpu$": "float16: ggml islands compute in float32 and round once; "
                                                      "the reference rounds after every op, 2 of 192 "
                                                      "values differ by 1 ulp (0.00049), just over rtol 1e-3",
    r"^test_resize_downsample_scales_(linear|cubic)_align_corners_cpu$":
        "align_corners with a fractional output length (4 x 0.6): ggonnx divides by the rounded length "
        "as onnxruntime does; the test data divides by the unrounded one (onnx/onnx#2462)",
}
