"""Tiny Hugging Face transformers, exported to the ONNX files tests/test_tiny_nets.py runs.

Narrow versions of the bench's transformer models (bench/transformers_models.py): BERT with an
attention mask, GPT-2 with its causal mask and LM head (at a fixed length and with a free
sequence axis), ViT, the T5 encoder (relative position buckets, RMS norm) and the Whisper encoder
(two Conv1d, GELU, sinusoidal positions), each 2 layers of width 32, so they run in milliseconds
and the files stay under 200 KB. They put the graph patterns of the real exports in CI: Gather
embeddings, the mask arithmetic on Shape outputs, 4-D attention MatMuls with Transpose/Reshape,
Softmax, LayerNormalization, Erf GELU, Gemm and MatMul linears.

The exported files are committed under tests/data/nets/ (tiny_<name>.onnx), so the tests need
neither torch nor transformers nor this script. To regenerate them (needs torch and
transformers; fixed seeds, so the weights come out the same for a given transformers version;
made with transformers 5.24.0):

    python tests/nets/tiny_transformers.py

Each model is built from an explicit config with random weights (torch.manual_seed(0)), eager
attention, eval mode, and exported with opset 17 and the TorchScript exporter (dynamo=False);
the only output is the first one the model returns (last hidden state or logits). After export
each file is checked against torch on other random inputs. Token ids are below 100 (every vocab
here is 100); BERT keeps 128 position embeddings as the real one keeps 512 (its token-type
buffer, indexed by GatherElements, is wider than 64).
"""
import os
import warnings
from unittest import mock

import numpy as np
import torch

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "nets")
VOCAB = 100
SEQ = 16


def bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, attn_implementation="eager")
    return BertModel(cfg, add_pooling_layer=False)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_inner=64, n_positions=64, use_cache=False,
                     bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    return GPT2LMHeadModel(cfg)


def vit():
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=32, patch_size=8, num_labels=10, attn_implementation="eager")
    return ViTForImageClassification(cfg)


def t5_encoder():
    from transformers import T5Config, T5EncoderModel
    cfg = T5Config.from_dict(dict(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                  relative_attention_num_buckets=32, feed_forward_proj="relu",
                                  is_encoder_decoder=True, use_cache=False))
    cfg._attn_implementation = "eager"
    return T5EncoderModel(cfg)


def whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    # the encoder takes exactly 2 * max_source_positions frames
    cfg = WhisperConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8,
                        max_source_positions=32, max_target_positions=32, pad_token_id=0, bos_token_id=0,
                        eos_token_id=0, decoder_start_token_id=0, attn_implementation="eager")
    return WhisperEncoder(cfg)


def tokens(batch, seq, mask, gen):
    """ids below VOCAB; with ``mask``, an attention_mask of ones whose last row ends in padding."""
    feeds = {"input_ids": torch.randint(0, VOCAB, (batch, seq), generator=gen)}
    if mask:
        m = torch.ones(batch, seq, dtype=torch.int64)
        m[-1, seq - 1 - int(torch.randint(0, seq // 2, (1,), generator=gen)):] = 0
        feeds["attention_mask"] = m
    return feeds


# (file name, model factory, inputs(gen), output name, dynamic sequence axis)
CASES = [
    ("tiny_bert", bert, lambda g: tokens(2, SEQ, True, g), "last_hidden_state", False),
    ("tiny_gpt2", gpt2, lambda g: tokens(1, SEQ, False, g), "logits", False),
    ("tiny_gpt2_dyn", gpt2, lambda g: tokens(1, SEQ, False, g), "logits", True),
    ("tiny_vit", vit, lambda g: {"pixel_values": torch.randn(1, 3, 32, 32, generator=g)}, "logits", False),
    ("tiny_t5_encoder", t5_encoder, lambda g: tokens(1, SEQ, True, g), "last_hidden_state", False),
    ("tiny_whisper_encoder", whisper_encoder, lambda g: {"input_features": torch.randn(1, 8, 64, generator=g)},
     "last_hidden_state", False),
]


class FirstOutput(torch.nn.Module):
    """Positional inputs named ``names``; only the model's first output."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        return self.model(**dict(zip(self.names, args)), return_dict=False)[0]


def export(model, feeds, out_name, dynamic, path):
    names = list(feeds)
    dynamic_axes = {n: {1: "sequence"} for n in names + [out_name]} if dynamic else None
    # Without an attention_mask (GPT-2) transformers looks for packed sequences in the position
    # ids with torch.diff, which the TorchScript exporter lacks; one sequence a row is never packed.
    with warnings.catch_warnings(), torch.no_grad(), \
            mock.patch("transformers.masking_utils.find_packed_sequence_indices", lambda position_ids: None):
        warnings.simplefilter("ignore")  # the TorchScript exporter's notices
        torch.onnx.export(FirstOutput(model, names).eval(), tuple(feeds.values()), path, input_names=names,
                          output_names=[out_name], dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)


def check(model, path, feeds):
    """The export against torch on inputs other than the traced ones; the max abs difference."""
    import onnxruntime as ort
    with torch.no_grad():
        ref = model(**feeds, return_dict=False)[0].numpy()
    out = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {k: v.numpy() for k, v in feeds.items()})[0]
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return float(np.abs(out - ref).max())


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, make, inputs, out_name, dynamic in CASES:
        torch.manual_seed(0)
        model = make().eval()
        gen = torch.Generator().manual_seed(0)
        path = os.path.join(OUT_DIR, name + ".onnx")
        export(model, inputs(gen), out_name, dynamic, path)
        other = inputs(gen)
        if dynamic:  # another length than the traced one
            other = {k: v[:, :5] for k, v in other.items()}
        print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes, max abs diff vs torch "
              f"{check(model, path, other):.1e}")


if __name__ == "__main__":
    main()
