"""Falcon (transformers' models/falcon): one fused `query_key_value` and `dense` under
`transformer.h.N.self_attention.`, biases under `bias` (default false), head_dim = hidden_size /
num_attention_heads, half-split RoPE. The fused rows, by architecture:
- `new_decoder_architecture` (Falcon-40B/180B): per KV group (num_kv_heads of them), its
  h/num_kv_heads query heads, then its key head, then its value head;
- `multi_query` (Falcon-7B, FalconConfig's default): the h query heads, one key head, one value head;
- otherwise (MHA): per head [q; k; v].
The input norm is `ln_attn` under the new architecture with num_ln_in_parallel_attn 2 (its
default), else `input_layernorm` (LayerNorm with bias, eps layer_norm_epsilon). Refused:
`alibi: true` (Falcon-RW's ALiBi bias is added before its softmax scale, unlike attncli's ALiBi).
"""

from __future__ import annotations

from .reader import Fields, ModelConfig, Reader, common_fields, register, rope_of


class FalconReader(Reader):
    model_types = ("falcon",)
    layers_name = "h"
    attention_name = "self_attention"
    embed_name = "word_embeddings"
    norm_kind = "layer"
    features = "fused query_key_value (MHA, multi-query, new decoder architecture), dense, optional biases"

    def parse(self, cfg: dict, where: str) -> ModelConfig:
        f = Fields(cfg, "falcon", where)
        f.refuse_if("alibi", bool, "Falcon's ALiBi is added before the softmax scale; attncli's is not")
        common = common_fields(f, eps_key="layer_norm_epsilon")
        d, h = common["d_model"], common["n_heads"]
        hd = d // h
        self_new = f.flag("new_decoder_architecture")
        if self_new:
            g = f.int("num_kv_heads", fallback=h)
        else:
            g = 1 if f.flag("multi_query", True) else h
        layout = "groups" if self_new else "mqa" if g == 1 and f.flag("multi_query", True) else "heads"
        biases = ("q_proj", "k_proj", "v_proj", "o_proj") if f.flag("bias") else ()
        return ModelConfig(family="gqa", head_dim=hd, n_kv_heads=g, biases=biases, rope=rope_of(f, hd),
                           fields={"layout": layout, "ln_attn": self_new and cfg.get("num_ln_in_parallel_attn", 2) == 2},
                           **common)  # fmt: skip

    def norm_of(self, c: ModelConfig) -> str:
        return "ln_attn" if c.fields.get("ln_attn") else "input_layernorm"

    def stored(self, c: ModelConfig) -> dict:
        d, h, g, hd = c.d_model, c.n_heads, c.n_kv_heads, c.head_dim
        rows = (h + 2 * g) * hd
        out = {"query_key_value.weight": ((rows, d), f"(num_attention_heads {h} + 2 × {g} KV heads) × head_dim {hd}, hidden_size {d}"),
               "dense.weight": ((d, h * hd), f"hidden_size {d}, hidden_size {d}")}  # fmt: skip
        if c.biases:
            out["query_key_value.bias"] = ((rows,), f"(num_attention_heads {h} + 2 × {g}) × head_dim {hd}")
            out["dense.bias"] = ((d,), f"hidden_size {d}")
        return out

    def to_module(self, c: ModelConfig, tensors: dict) -> dict:
        h, g, hd = c.n_heads, c.n_kv_heads, c.head_dim
        layout = c.fields["layout"]

        def split(t):  # (rows, …) → q (h·hd, …), k (g·hd, …), v (g·hd, …)
            rest = t.shape[1:]
            if layout == "groups":
                t = t.reshape(g, h // g + 2, hd, *rest)
                return t[:, :-2].reshape(h * hd, *rest), t[:, -2].reshape(g * hd, *rest), t[:, -1].reshape(g * hd, *rest)
            if layout == "mqa":
                return t.split([h * hd, hd, hd])
            t = t.reshape(h, 3, hd, *rest)
            return tuple(t[:, i].reshape(h * hd, *rest) for i in range(3))

        out = {"o_proj.weight": tensors["dense.weight"]}
        for part, values in (("weight", tensors["query_key_value.weight"]), ("bias", tensors.get("query_key_value.bias"))):
            if values is not None:
                for name, piece in zip(("q_proj", "k_proj", "v_proj"), split(values)):
                    out[f"{name}.{part}"] = piece
        if c.biases:
            out["o_proj.bias"] = tensors["dense.bias"]
        return out


register(FalconReader())
