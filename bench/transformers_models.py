"""Transformer bench models: Hugging Face architectures with random weights, exported to ONNX once.

Needs torch and transformers (``pip install torch==2.14.1 transformers``; measured with
transformers 5.24.0). Nothing is downloaded: every model is built from an explicit config class
with the published checkpoint's dimensions, seeded with ``torch.manual_seed(0)``, put in eval
mode and exported by the TorchScript exporter (opset 17, ``dynamo=False``) with eager attention
(MatMul, Softmax, MatMul; SDPA exports are harder to read). Exports are cached in ``bench/.cache/``
beside the vision models.

- ``bert_base_s128``, ``bert_base_b8_s128``: BertModel (bert-base-uncased shape), input_ids and
  attention_mask, last hidden state. The batch-8 mask pads rows to lengths from 64 to 128.
- ``minilm_l6_s128``: BertModel at all-MiniLM-L6-v2's shape (hidden 384, 6 layers, 12 heads,
  intermediate 1536).
- ``distilbert_s128``: DistilBertModel, last hidden state.
- ``gpt2_s64``: GPT2LMHeadModel logits (the 768 x 50257 LM head is most of its FLOPs, as users
  run it); no KV cache.
- ``t5_small_encoder_s128``: T5EncoderModel at t5-small's shape, input_ids and attention_mask.
- ``whisper_tiny_encoder``: WhisperEncoder at whisper-tiny's shape on 80 x 3000 log-mel features.
- ``vit_b16``: ViTForImageClassification (base, patch 16, 224, 1000 classes) logits.
- ``bert_base_ortopt_s128``, ``gpt2_ortopt_s64``: those two exports after onnxruntime's transformer
  optimizer (``onnxruntime.transformers.optimizer``, its default level: SkipLayerNormalization,
  Gelu / FastGelu and the other com.microsoft ops it fuses), both runtimes on the optimized file.
- ``bert_base_dyn_s1``, ``bert_base_dyn_s8``, ``gpt2_dyn_s1``, ``gpt2_dyn_s8``: the same BERT and
  GPT-2 exported with a free sequence axis and fed 1 or 8 tokens (decode-shaped calls: small M,
  the weights streamed once per call).

Every builder returns ``(model_bytes, feeds, flops)`` like ``models.py``; flops count the
MatMuls, Gemms and Convs at the fed sizes (``matmul_flops``).
"""
from __future__ import annotations

import functools
import os
import warnings
from unittest import mock

import numpy as np
import onnx

from vision import CACHE

BERT_VOCAB, GPT2_VOCAB, T5_VOCAB = 30522, 50257, 32128


def matmul_flops(model: onnx.ModelProto, feeds: dict) -> int:
    """2 * multiply-adds of every MatMul, Gemm and Conv at the feeds' shapes: 2 * K * prod(output),
    K the contracted dim (a MatMul's last input dim, so batched 3-D/4-D attention MatMuls count
    too; a Conv weight's prod(w[1:])).

    ONNX shape inference loses the batch and head dims of these exports (ConstantOfShape/Where/
    Expand arithmetic on Shape outputs), so the shapes are read off one onnxruntime run with
    each node's inputs and output exposed as graph outputs."""
    import onnxruntime as ort
    model = onnx.ModelProto.FromString(model.SerializeToString())
    mms = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    consts = {i.name: list(i.dims) for i in model.graph.initializer}
    wanted = list(dict.fromkeys(n for node in mms for n in (*node.input[:2], node.output[0]) if n not in consts))
    outputs = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in wanted if n not in outputs)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the nodes
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    shapes = {**consts, **{n: list(v.shape) for n, v in zip(names, sess.run(names, feeds))}}
    flops = 0
    for node in mms:
        a, out = shapes[node.input[0]], shapes[node.output[0]]
        if node.op_type == "Conv":  # whisper's two input convs
            flops += 2 * int(np.prod(shapes[node.input[1]][1:])) * int(np.prod(out))
            continue
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[0] if node.op_type == "Gemm" and trans_a else a[-1]
        flops += 2 * k * int(np.prod(out))
    return flops


def first_output(model, names):
    """Wrap a HF model so the export takes positional ``names`` and returns only its first output
    (last hidden state or logits)."""
    import torch

    class FirstOutput(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model(**dict(zip(names, args)), return_dict=False)[0]

    return FirstOutput()


def _bert(**kw):
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(attn_implementation="eager", **kw), add_pooling_layer=False)


def _minilm():
    return _bert(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def _distilbert():
    from transformers import DistilBertConfig, DistilBertModel
    return DistilBertModel(DistilBertConfig(attn_implementation="eager"))


def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2LMHeadModel(GPT2Config(attn_implementation="eager", use_cache=False))


def _t5_encoder():
    from transformers import T5Config, T5EncoderModel
    cfg = T5Config.from_dict(dict(vocab_size=T5_VOCAB, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
                                  num_heads=8, relative_attention_num_buckets=32, dropout_rate=0.1,
                                  feed_forward_proj="relu", is_encoder_decoder=True, use_cache=False))
    cfg._attn_implementation = "eager"
    return T5EncoderModel(cfg)


def _whisper_encoder():
    from transformers import WhisperConfig, WhisperModel
    cfg = WhisperConfig(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                        decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
                        num_mel_bins=80, max_source_positions=1500, attn_implementation="eager")
    return WhisperModel(cfg).get_encoder()


def _vit():
    from transformers import ViTConfig, ViTForImageClassification
    return ViTForImageClassification(ViTConfig(num_labels=1000, attn_implementation="eager"))


def _token_inputs(batch: int, seq: int, vocab: int, mask: bool, seed: int = 0) -> dict:
    """Random token ids; attention_mask of ones, rows after the first padded to random lengths."""
    rng = np.random.default_rng(seed)
    feeds = {"input_ids": rng.integers(0, vocab, (batch, seq), dtype=np.int64)}
    if mask:
        m = np.ones((batch, seq), dtype=np.int64)
        for r in range(1, batch):
            m[r, rng.integers(seq // 2, seq + 1):] = 0
        feeds["attention_mask"] = m
    return feeds


# name: (model factory, input kind, vocab, output name)
MODELS = {
    "bert_base": (_bert, "tokens_mask", BERT_VOCAB, "last_hidden_state"),
    "minilm_l6": (_minilm, "tokens_mask", BERT_VOCAB, "last_hidden_state"),
    "distilbert": (_distilbert, "tokens_mask", BERT_VOCAB, "last_hidden_state"),
    "gpt2": (_gpt2, "tokens", GPT2_VOCAB, "logits"),
    "t5_small_encoder": (_t5_encoder, "tokens_mask", T5_VOCAB, "last_hidden_state"),
    "whisper_tiny_encoder": (_whisper_encoder, "mel", None, "last_hidden_state"),
    "vit_b16": (_vit, "image", None, "logits"),
}


def make_feeds(name: str, batch: int = 1, seq: int = 128) -> dict:
    _, kind, vocab, _ = MODELS[name]
    rng = np.random.default_rng(0)
    if kind == "mel":
        return {"input_features": rng.standard_normal((batch, 80, 3000)).astype(np.float32)}
    if kind == "image":
        return {"pixel_values": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
    return _token_inputs(batch, seq, vocab, mask=kind == "tokens_mask")


def export(name: str, batch: int = 1, seq: int = 128, dynamic: bool = False, free_batch: bool = False) -> bytes:
    """The ONNX export of MODELS[name] for inputs like make_feeds(name, batch, seq), cached.

    ``dynamic`` leaves the sequence axis free (traced at ``seq``), ``free_batch`` the batch axis too."""
    kind = MODELS[name][1]
    shape = "bdyn_dyn" if free_batch else f"b{batch}_dyn" if dynamic else \
        f"b{batch}" + (f"_s{seq}" if kind.startswith("tokens") else "")
    dynamic = dynamic or free_batch
    path = os.path.join(CACHE, f"hf_{name}_{shape}.onnx")
    if not os.path.exists(path):
        import torch
        make, _, _, out_name = MODELS[name]
        torch.manual_seed(0)
        model = make().eval()
        feeds = make_feeds(name, batch, seq)
        names = list(feeds)
        args = tuple(torch.from_numpy(v) for v in feeds.values())
        axes = {0: "batch", 1: "sequence"} if free_batch else {1: "sequence"}
        dynamic_axes = {n: axes for n in names + [out_name]} if dynamic else None
        os.makedirs(CACHE, exist_ok=True)
        # Without an attention_mask (GPT-2) transformers looks for packed sequences in the
        # position ids with torch.diff, which the TorchScript exporter lacks; one sequence a row
        # is never packed, so that check is skipped for the export.
        with warnings.catch_warnings(), torch.no_grad(), \
                mock.patch("transformers.masking_utils.find_packed_sequence_indices", lambda position_ids: None):
            warnings.simplefilter("ignore")  # the TorchScript exporter's notices
            torch.onnx.export(first_output(model, names).eval(), args, path, input_names=names, output_names=[out_name],
                              dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    with open(path, "rb") as fh:
        return fh.read()


def ort_optimized(name: str, batch: int, seq: int, model_type: str) -> bytes:
    """export(name, batch, seq) after onnxruntime's transformer optimizer (12 heads, hidden 768), cached."""
    path = os.path.join(CACHE, f"hf_{name}_b{batch}_s{seq}_ortopt.onnx")
    if not os.path.exists(path):
        from onnxruntime.transformers import optimizer
        raw = os.path.join(CACHE, f"hf_{name}_b{batch}_s{seq}.onnx")
        export(name, batch, seq)
        optimizer.optimize_model(raw, model_type=model_type, num_heads=12, hidden_size=768).save_model_to_file(path)
    with open(path, "rb") as fh:
        return fh.read()


def case(name: str, batch: int = 1, seq: int = 128, dynamic: bool = False, feed_seq: int | None = None,
         ort_optimizer: str | None = None):
    model_bytes = ort_optimized(name, batch, seq, ort_optimizer) if ort_optimizer else export(name, batch, seq, dynamic)
    feeds = make_feeds(name, batch, feed_seq or seq)
    return model_bytes, feeds, matmul_flops(onnx.load_from_string(model_bytes), feeds)


CASES = {
    "bert_base_s128": functools.partial(case, "bert_base", 1, 128),
    "bert_base_b8_s128": functools.partial(case, "bert_base", 8, 128),
    "minilm_l6_s128": functools.partial(case, "minilm_l6", 1, 128),
    "distilbert_s128": functools.partial(case, "distilbert", 1, 128),
    "gpt2_s64": functools.partial(case, "gpt2", 1, 64),
    "t5_small_encoder_s128": functools.partial(case, "t5_small_encoder", 1, 128),
    "whisper_tiny_encoder": functools.partial(case, "whisper_tiny_encoder", 1),
    "vit_b16": functools.partial(case, "vit_b16", 1),
    "bert_base_ortopt_s128": functools.partial(case, "bert_base", 1, 128, ort_optimizer="bert"),
    "gpt2_ortopt_s64": functools.partial(case, "gpt2", 1, 64, ort_optimizer="gpt2"),
}
for _seq in (1, 8):  # one export per model, traced at 8 tokens, fed 1 or 8
    CASES[f"bert_base_dyn_s{_seq}"] = functools.partial(case, "bert_base", 1, 8, True, _seq)
    CASES[f"gpt2_dyn_s{_seq}"] = functools.partial(case, "gpt2", 1, 8, True, _seq)
