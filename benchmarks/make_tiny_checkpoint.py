"""Write a tiny Llama-style checkpoint (random weights) for trying `--weights` and `convert`.

    pip install -e '.[dev]'    # transformers, the reference implementation (test-only extra)
    python benchmarks/make_tiny_checkpoint.py /tmp/tiny-llama
    attncli convert /tmp/tiny-llama --layers all --to gqa:n_kv_heads=4 --to mqa --to mla:kv_lora_rank=64

The model is built offline from a config with transformers' own initialisation (seeded) and
saved with `save_pretrained` (config.json + model.safetensors). Its weights are random: figures
measured on it show what the tool reports, not what converting a trained model costs; that needs
the real model's weights on disk.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="where to write config.json and model.safetensors")
    ap.add_argument("--hidden", type=int, default=256, help="hidden_size (d_model)")
    ap.add_argument("--heads", type=int, default=8, help="num_attention_heads")
    ap.add_argument("--kv-heads", type=int, default=8, help="num_key_value_heads (= heads: MHA)")
    ap.add_argument("--layers", type=int, default=2, help="num_hidden_layers")
    ap.add_argument("--vocab", type=int, default=1000, help="vocab_size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, max_position_embeddings=4096)  # fmt: skip
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(args.folder)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.folder}: llama, {args.layers} layers, d_model {args.hidden}, {args.heads} heads "
          f"({args.kv_heads} KV) of {args.hidden // args.heads}, {n:,} parameters, seed {args.seed}")  # fmt: skip


if __name__ == "__main__":
    main()
