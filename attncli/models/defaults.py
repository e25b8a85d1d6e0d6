"""Model-type defaults as data: what transformers fills in for a field a config.json leaves out.

A config.json holds only the fields its writer set; transformers builds the config class of its
`model_type` and every absent field takes that class's default (vLLM loads configs the same way,
so it serves with those values). attncli reads config.json without transformers, so this table
holds, for every model_type the normaliser (hfconfig.py) accepts, the defaults of the fields it
reads, copied from the installed transformers' config class named in the comment above each entry
(tests/test_hfconfig_defaults.py builds each class and checks the table against it).

How to read a field (hfconfig.py does this; a weight reader under attncli/models/ should too):

    defaults = defaults_for(model_type)           # None: attncli knows no defaults for this type
    value = data[key] if key in data else defaults.get(key)

- An explicit `null` in config.json stays null (transformers keeps an explicit None).
- A default of None means the class leaves the field unset and its __post_init__ derives it, as
  the normaliser does: head_dim = hidden_size // num_attention_heads, num_key_value_heads =
  num_attention_heads, no sliding window, layer_types from the type's own rule.
- A field missing from an entry does not exist in that class: its absence means "not used".
- A few entries hold rules that __post_init__ takes from **kwargs rather than from a declared
  field (`sliding_window_pattern`, `full_attention_interval`); each is commented.
- `rope_theta`: transformers 5 keeps it inside `rope_parameters`; the default is the class's
  `default_theta` (10000.0 unless the class sets its own).

Multimodal wrappers (`text_config`) read the language model's fields with the defaults of the
wrapper's text model type (TEXT_CONFIG_TYPES), as transformers' sub-config defaults do.

Pure Python, no torch, no transformers.
"""

from __future__ import annotations

# The fields the normaliser reads, by their transformers names (the table holds each one a
# type's config class declares; tests/test_hfconfig_defaults.py checks none is left out).
READ_FIELDS = tuple("""
vocab_size hidden_size intermediate_size num_hidden_layers num_attention_heads num_key_value_heads
head_dim max_position_embeddings tie_word_embeddings attention_bias qkv_bias use_qkv_bias use_bias
bias mlp_bias multi_query new_decoder_architecture num_kv_heads ffn_hidden_size n_embd n_layer
n_head n_inner n_positions sliding_window use_sliding_window max_window_layers layer_types
num_local_experts num_experts n_routed_experts num_experts_per_tok moe_intermediate_size
shared_expert_intermediate_size shared_intermediate_size n_shared_experts first_k_dense_replace
moe_layer_freq decoder_sparse_step mlp_only_layers expert_layer_period expert_layer_offset
interleave_moe_layer_step intermediate_size_mlp moe_layers moe_shared_expert_intermediate_size
kv_lora_rank q_lora_rank qk_nope_head_dim qk_rope_head_dim v_head_dim attention_chunk_size
no_rope_layers no_rope_layer_interval linear_conv_kernel_dim linear_key_head_dim
linear_value_head_dim linear_num_key_heads linear_num_value_heads attn_layer_period
attn_layer_offset layers_block_type hybrid_override_pattern mamba_d_state mamba_d_conv mamba_expand
mamba_n_heads mamba_d_head mamba_n_groups mamba_ngroups n_mamba_heads mamba_d_ssm mamba_num_heads
mamba_head_dim ssm_state_size n_groups conv_kernel expand mamba_ssm_cache_dtype num_mem_blocks
state_size num_heads attn_layer_indices
""".split())

DEFAULTS: dict[str, dict[str, object]] = {
    # transformers.LlamaConfig (configuration_llama.py)
    "llama": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.MistralConfig (configuration_mistral.py)
    "mistral": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "sliding_window": 4096, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.MixtralConfig (configuration_mixtral.py)
    "mixtral": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "sliding_window": None, "num_local_experts": 8, "num_experts_per_tok": 2,
        "rope_theta": 1000000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-05,
    },
    # transformers.Qwen2Config (configuration_qwen2.py)
    "qwen2": {
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "sliding_window": 4096, "use_sliding_window": False, "max_window_layers": 28,
        "layer_types": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.Qwen2MoeConfig (configuration_qwen2_moe.py)
    "qwen2_moe": {
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "qkv_bias": True, "sliding_window": 4096, "use_sliding_window": False,
        "max_window_layers": 28, "layer_types": None, "num_experts": 60, "num_experts_per_tok": 4,
        "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 1,
        "mlp_only_layers": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.Qwen3Config (configuration_qwen3.py)
    "qwen3": {
        "vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "head_dim": 128, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "attention_bias": False, "sliding_window": 4096, "use_sliding_window": False,
        "max_window_layers": 28, "layer_types": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.Qwen3MoeConfig (configuration_qwen3_moe.py)
    "qwen3_moe": {
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24,
        "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "attention_bias": False, "sliding_window": 4096, "use_sliding_window": False,
        "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768, "decoder_sparse_step": 1,
        "mlp_only_layers": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.GemmaConfig (configuration_gemma.py)
    "gemma": {
        "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "max_position_embeddings": 8192,
        "tie_word_embeddings": True, "attention_bias": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.Gemma2Config (configuration_gemma2.py)
    "gemma2": {
        "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 8192,
        "tie_word_embeddings": True, "attention_bias": False, "sliding_window": 4096, "layer_types": None,
        "rope_theta": 10000.0,
        # __post_init__: with no layer_types, every 2nd layer is global (full), the others sliding
        "sliding_window_pattern": 2,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06, "query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0, "use_bidirectional_attention": None,
    },
    # transformers.Gemma3TextConfig (configuration_gemma3.py)
    "gemma3_text": {
        "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131072,
        "tie_word_embeddings": True, "attention_bias": False, "sliding_window": 4096, "layer_types": None,
        "rope_theta": 1000000.0,
        # __post_init__ reads kwargs['sliding_window_pattern'] (default 6): every 6th layer is global
        "sliding_window_pattern": 6,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06, "query_pre_attn_scalar": 256, "attn_logit_softcapping": None, "use_bidirectional_attention": False,
    },
    # transformers.Phi3Config (configuration_phi3.py)
    "phi3": {
        "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "sliding_window": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-05, "original_max_position_embeddings": 4096,
    },
    # transformers.PhiConfig (configuration_phi.py)
    "phi": {
        "vocab_size": 51200, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "layer_norm_eps": 1e-05, "qk_layernorm": False,
    },
    # transformers.GPTNeoXConfig (configuration_gpt_neox.py)
    "gpt_neox": {
        "vocab_size": 50432, "hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 44,
        "num_attention_heads": 64, "max_position_embeddings": 2048, "tie_word_embeddings": False,
        "attention_bias": True, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "layer_norm_eps": 1e-05,
    },
    # transformers.FalconConfig (configuration_falcon.py)
    "falcon": {
        "vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
        "max_position_embeddings": 2048, "tie_word_embeddings": True, "bias": False, "multi_query": True,
        "new_decoder_architecture": False, "num_kv_heads": None, "ffn_hidden_size": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "layer_norm_epsilon": 1e-05, "alibi": False, "num_ln_in_parallel_attn": None,
    },
    # transformers.Olmo2Config (configuration_olmo2.py)
    "olmo2": {
        "vocab_size": 50304, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-05,
    },
    # transformers.CohereConfig (configuration_cohere.py)
    "cohere": {
        "vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
        "num_attention_heads": 64, "num_key_value_heads": None, "max_position_embeddings": 8192,
        "tie_word_embeddings": True, "attention_bias": False, "rope_theta": 500000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "layer_norm_eps": 1e-05, "use_qk_norm": False,
    },
    # transformers.Cohere2Config (configuration_cohere2.py)
    "cohere2": {
        "vocab_size": 256000, "hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40,
        "num_attention_heads": 64, "num_key_value_heads": None, "max_position_embeddings": 8192,
        "tie_word_embeddings": True, "attention_bias": False, "sliding_window": 4096, "layer_types": None,
        "rope_theta": 10000.0,
        # __post_init__ reads kwargs['sliding_window_pattern'] (default 4): every 4th layer is global
        "sliding_window_pattern": 4,
    },
    # transformers.StableLmConfig (configuration_stablelm.py)
    "stablelm": {
        "vocab_size": 50304, "hidden_size": 2560, "intermediate_size": 6912, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "use_qkv_bias": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "layer_norm_eps": 1e-05, "qk_layernorm": False,
    },
    # transformers.Starcoder2Config (configuration_starcoder2.py)
    "starcoder2": {
        "vocab_size": 49152, "hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 30,
        "num_attention_heads": 24, "num_key_value_heads": 2, "max_position_embeddings": 4096,
        "tie_word_embeddings": True, "use_bias": True, "sliding_window": None, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "norm_epsilon": 1e-05,
    },
    # transformers.Glm4Config (configuration_glm4.py)
    "glm4": {
        "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 13696, "num_hidden_layers": 40,
        "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": True, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1.5625e-07,
    },
    # transformers.GptOssConfig (configuration_gpt_oss.py)
    "gpt_oss": {
        "vocab_size": 201088, "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 36,
        "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": True, "sliding_window": 128, "layer_types": None,
        "num_local_experts": 128, "num_experts_per_tok": 4, "rope_theta": 150000.0,
        # __post_init__: with no layer_types, every 2nd layer is global (full), the others sliding
        "sliding_window_pattern": 2,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-05,
    },
    # transformers.GraniteConfig (configuration_granite.py)
    "granite": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06, "attention_multiplier": 1.0, "embedding_multiplier": 1.0,
    },
    # transformers.SmolLM3Config (configuration_smollm3.py)
    "smollm3": {
        "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
        "num_attention_heads": 16, "num_key_value_heads": 4, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False, "sliding_window": None,
        "use_sliding_window": False, "layer_types": None, "no_rope_layers": None, "no_rope_layer_interval": 4,
        "rope_theta": 2000000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.DeepseekV2Config (configuration_deepseek_v2.py)
    "deepseek_v2": {
        "vocab_size": 102400, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "n_routed_experts": 64,
        "num_experts_per_tok": None, "moe_intermediate_size": 1407, "n_shared_experts": 2,
        "first_k_dense_replace": 0, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64, "v_head_dim": 128, "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06,
    },
    # transformers.DeepseekV3Config (configuration_deepseek_v3.py)
    "deepseek_v3": {
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "num_hidden_layers": 61,
        "num_attention_heads": 128, "num_key_value_heads": 128, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "attention_bias": False, "n_routed_experts": 256, "num_experts_per_tok": 8,
        "moe_intermediate_size": 2048, "n_shared_experts": 1, "first_k_dense_replace": 3, "kv_lora_rank": 512,
        "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
        "rope_theta": 10000.0,
        # the attention fields the weight readers read (attncli/models/<family>.py)
        "rms_norm_eps": 1e-06, "rope_interleave": True,
    },
    # transformers.Llama4TextConfig (configuration_llama4.py)
    "llama4_text": {
        "vocab_size": 202048, "hidden_size": 5120, "intermediate_size": 8192, "num_hidden_layers": 48,
        "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": False, "layer_types": None, "num_local_experts": 16,
        "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "intermediate_size_mlp": 16384,
        "moe_layers": None, "attention_chunk_size": 8192, "no_rope_layers": None, "no_rope_layer_interval": 4,
        "rope_theta": 500000.0,
    },
    # transformers.NemotronHConfig (configuration_nemotron_h.py); mamba_ssm_cache_dtype is the SSM
    # state's dtype vLLM's NemotronHForCausalLMConfig hook serves with (float32 too where a class lacks it)
    "nemotron_h": {
        "vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 21504, "num_attention_heads": 32,
        "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 4096, "tie_word_embeddings": False,
        "attention_bias": False, "use_bias": False, "mlp_bias": False, "sliding_window": None,
        "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 7688, "n_shared_experts": 1,
        "moe_shared_expert_intermediate_size": 7688, "layers_block_type": None, "mamba_num_heads": 128,
        "mamba_head_dim": 64, "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4, "expand": 2,
        "mamba_ssm_cache_dtype": 'float32', "rope_theta": 10000.0,
    },
    # transformers.JambaConfig (configuration_jamba.py)
    "jamba": {
        "vocab_size": 65536, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 262144,
        "tie_word_embeddings": False, "num_experts": 16, "num_experts_per_tok": 2, "expert_layer_period": 2,
        "expert_layer_offset": 1, "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16,
        "mamba_d_conv": 4, "mamba_expand": 2, "rope_theta": 10000.0,
    },
    # transformers.Zamba2Config (configuration_zamba2.py)
    "zamba2": {
        "vocab_size": 32000, "hidden_size": 2560, "intermediate_size": None, "num_hidden_layers": 54,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 4096,
        "tie_word_embeddings": True, "layers_block_type": None, "mamba_d_state": 64, "mamba_d_conv": 4,
        "mamba_expand": 2, "mamba_ngroups": 1, "n_mamba_heads": 8, "num_mem_blocks": 1, "rope_theta": 10000.0,
    },
    # transformers.FalconH1Config (configuration_falcon_h1.py)
    "falcon_h1": {
        "vocab_size": 128000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "mamba_d_state": 256,
        "mamba_d_conv": 4, "mamba_expand": 2, "mamba_n_heads": 128, "mamba_d_head": 'auto', "mamba_n_groups": 1,
        "mamba_d_ssm": 1024, "rope_theta": 10000.0,
    },
    # transformers.GraniteMoeHybridConfig (configuration_granitemoehybrid.py)
    "granitemoehybrid": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "layer_types": None, "num_local_experts": 8,
        "num_experts_per_tok": 2, "shared_intermediate_size": 1024, "mamba_d_state": 256, "mamba_d_conv": 4,
        "mamba_expand": 2, "mamba_n_heads": 128, "mamba_d_head": 'auto', "mamba_n_groups": 1, "rope_theta": 10000.0,
    },
    # transformers.Qwen3NextConfig (configuration_qwen3_next.py)
    "qwen3_next": {
        "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 48,
        "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "attention_bias": False, "layer_types": None, "num_experts": 512,
        "num_experts_per_tok": 10, "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
        "decoder_sparse_step": 1, "mlp_only_layers": None, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128,
        "linear_value_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
        "rope_theta": 10000.0,
        # __post_init__ reads kwargs['full_attention_interval'] (default 4): every 4th layer is softmax
        "full_attention_interval": 4,
    },
    # transformers.MiniMaxConfig (configuration_minimax.py)
    "minimax": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "sliding_window": None, "layer_types": None, "num_local_experts": 8,
        "num_experts_per_tok": 2, "rope_theta": 1000000.0,
    },
    # transformers.GPT2Config (configuration_gpt2.py)
    "gpt2": {
        "vocab_size": 50257, "tie_word_embeddings": True, "n_embd": 768, "n_layer": 12, "n_head": 12,
        "n_inner": None, "n_positions": 1024,
    },
    # transformers.GPTBigCodeConfig (configuration_gpt_bigcode.py)
    "gpt_bigcode": {
        "vocab_size": 50257, "tie_word_embeddings": True, "multi_query": True, "n_embd": 768, "n_layer": 12,
        "n_head": 12, "n_inner": None, "n_positions": 1024,
    },
    # transformers.NemotronConfig (configuration_nemotron.py)
    "nemotron": {
        "vocab_size": 256000, "hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 32,
        "num_attention_heads": 48, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 10000.0,
    },
    # transformers.MambaConfig (configuration_mamba.py)
    "mamba": {
        "vocab_size": 50280, "hidden_size": 768, "num_hidden_layers": 32, "tie_word_embeddings": True,
        "use_bias": False, "conv_kernel": 4, "expand": 2, "state_size": 16,
    },
    # transformers.Mamba2Config (configuration_mamba2.py)
    "mamba2": {
        "vocab_size": 32768, "hidden_size": 4096, "num_hidden_layers": 64, "head_dim": 64,
        "tie_word_embeddings": False, "use_bias": False, "n_groups": 8, "conv_kernel": 4, "expand": 2,
        "state_size": 128, "num_heads": 128,
    },
    # transformers.FalconMambaConfig (configuration_falcon_mamba.py); as MambaConfig, intermediate_size is
    # not a field: __post_init__ sets expand × hidden_size unless the config gives it
    "falcon_mamba": {
        "vocab_size": 50280, "hidden_size": 768, "num_hidden_layers": 32, "tie_word_embeddings": True,
        "use_bias": False, "conv_kernel": 4, "expand": 2, "state_size": 16,
    },
    # transformers.BambaConfig (configuration_bamba.py); mamba_d_head `auto` = mamba_expand × hidden_size //
    # mamba_n_heads (__post_init__); no attn_layer_indices: every layer Mamba-2 (its layers_block_type)
    "bamba": {
        "vocab_size": 128000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 262144,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "attn_layer_indices": None,
        "mamba_n_heads": 128, "mamba_d_head": 'auto', "mamba_n_groups": 1, "mamba_d_state": 256, "mamba_d_conv": 4,
        "mamba_expand": 2, "rope_theta": 10000.0,
    },
    # --- added for issue 13 (acceptance 3): types vLLM serves whose configs omit head_dim ---
    # transformers.OlmoConfig (configuration_olmo.py)
    "olmo": {
        "vocab_size": 50304, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "rope_theta": 10000.0,
    },
    # transformers.Olmo3Config (configuration_olmo3.py)
    "olmo3": {
        "vocab_size": 50304, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "sliding_window": 4096, "layer_types": None,
        "rope_theta": 500000.0,
        # __post_init__: with no layer_types, every 4th layer is global (full), the others sliding
        "sliding_window_pattern": 4,
    },
    # transformers.OlmoeConfig (configuration_olmoe.py)
    "olmoe": {
        "vocab_size": 50304, "hidden_size": 2048, "intermediate_size": 2048, "num_hidden_layers": 16,
        "num_attention_heads": 16, "num_key_value_heads": None, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "attention_bias": False, "num_experts": 64, "num_experts_per_tok": 8,
        "rope_theta": 10000.0,
    },
    # transformers.ExaoneConfig (configuration_exaone.py)
    "exaone": {
        "vocab_size": 102400, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": None, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 500000.0,
    },
    # transformers.Exaone4Config (configuration_exaone4.py)
    "exaone4": {
        "vocab_size": 102400, "hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "sliding_window": 4096, "layer_types": None, "rope_theta": 10000.0,
        # a declared field (default 4): with no layer_types, every 4th layer is global, the others sliding
        "sliding_window_pattern": 4,
    },
    # transformers.InternLM3Config (configuration_internlm3.py)
    "internlm3": {
        "vocab_size": 128512, "hidden_size": 4096, "intermediate_size": 10240, "num_hidden_layers": 48,
        "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128, "max_position_embeddings": 32768,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 10000.0,
    },
    # transformers.GlmConfig (configuration_glm.py)
    "glm": {
        "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 13696, "num_hidden_layers": 40,
        "num_attention_heads": 32, "num_key_value_heads": 2, "head_dim": 128, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": True, "rope_theta": 10000.0,
    },
    # transformers.Glm4MoeConfig (configuration_glm4_moe.py)
    "glm4_moe": {
        "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 10944, "num_hidden_layers": 46,
        "num_attention_heads": 96, "num_key_value_heads": 8, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": False, "n_routed_experts": 128, "num_experts_per_tok": 8,
        "moe_intermediate_size": 1408, "n_shared_experts": 1, "first_k_dense_replace": 1, "rope_theta": 10000.0,
    },
    # transformers.PhimoeConfig (configuration_phimoe.py)
    "phimoe": {
        "vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 6400, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
        "tie_word_embeddings": False, "attention_bias": False, "sliding_window": None, "num_local_experts": 16,
        "num_experts_per_tok": 2, "rope_theta": 1000000.0,
    },
    # transformers.GraniteMoeConfig (configuration_granitemoe.py)
    "granitemoe": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "num_local_experts": 8, "num_experts_per_tok": 2,
        "rope_theta": 10000.0,
    },
    # transformers.GraniteMoeSharedConfig (configuration_granitemoeshared.py)
    "granitemoeshared": {
        "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "num_local_experts": 8, "num_experts_per_tok": 2,
        "shared_intermediate_size": 0, "rope_theta": 10000.0,
    },
    # transformers.Ernie4_5Config (configuration_ernie4_5.py)
    "ernie4_5": {
        "vocab_size": 103424, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 18,
        "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128, "max_position_embeddings": 131072,
        "tie_word_embeddings": True, "use_bias": False, "rope_theta": 500000.0,
    },
    # transformers.Ernie4_5_MoeConfig (configuration_ernie4_5_moe.py)
    "ernie4_5_moe": {
        "vocab_size": 103424, "hidden_size": 2560, "intermediate_size": 12288, "num_hidden_layers": 28,
        "num_attention_heads": 20, "num_key_value_heads": 4, "max_position_embeddings": 131072,
        "tie_word_embeddings": True, "use_bias": False, "moe_intermediate_size": 1536, "rope_theta": 500000.0,
    },
    # transformers.HunYuanDenseV1Config (configuration_hunyuan_v1_dense.py)
    "hunyuan_v1_dense": {
        "vocab_size": 290943, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "rope_theta": 10000.0,
    },
    # transformers.HunYuanMoEV1Config (configuration_hunyuan_v1_moe.py)
    "hunyuan_v1_moe": {
        "vocab_size": 290943, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "max_position_embeddings": 2048,
        "tie_word_embeddings": False, "attention_bias": False, "num_experts": 1, "rope_theta": 10000.0,
    },
    # transformers.SeedOssConfig (configuration_seed_oss.py)
    "seed_oss": {
        "vocab_size": 155136, "hidden_size": 4096, "intermediate_size": 27648, "num_hidden_layers": 64,
        "num_attention_heads": 80, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 524288,
        "tie_word_embeddings": False, "attention_bias": True, "mlp_bias": False, "rope_theta": 10000.0,
    },
    # transformers.HeliumConfig (configuration_helium.py)
    "helium": {
        "vocab_size": 48000, "hidden_size": 2560, "intermediate_size": 7040, "num_hidden_layers": 24,
        "num_attention_heads": 20, "num_key_value_heads": 20, "head_dim": 128, "max_position_embeddings": 4096,
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "rope_theta": 100000.0,
    },
    # transformers.ApertusConfig (configuration_apertus.py)
    "apertus": {
        "vocab_size": 131072, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": None, "max_position_embeddings": 65536,
        "tie_word_embeddings": False, "attention_bias": False, "rope_theta": 12000000.0,
    },
    # transformers.PersimmonConfig (configuration_persimmon.py)
    "persimmon": {
        "vocab_size": 262144, "hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 36,
        "num_attention_heads": 64, "max_position_embeddings": 16384, "tie_word_embeddings": False, "rope_theta":
        10000.0,
    },
    # transformers.OPTConfig (configuration_opt.py)
    "opt": {
        "vocab_size": 50272, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "max_position_embeddings": 2048, "tie_word_embeddings": True,
    },
    # transformers.GPTJConfig (configuration_gptj.py)
    "gptj": {
        "vocab_size": 50400, "tie_word_embeddings": False, "n_embd": 4096, "n_layer": 28, "n_head": 16, "n_inner":
        None, "n_positions": 2048,
    },
    # transformers.BloomConfig (configuration_bloom.py)
    "bloom": {
        "vocab_size": 250880, "hidden_size": 64, "tie_word_embeddings": True, "n_layer": 2, "n_head": 8,
    },
}


# Types that transformers' classes do not cover, and the type whose defaults they take.
ALIASES = {
    # Falcon's first checkpoints name their type after the dataset; transformers maps them onto FalconConfig
    "RefinedWeb": "falcon",
    "RefinedWebModel": "falcon",
}
# Nemotron-NAS (Llama-3.x-Nemotron Super/Ultra/Nano, DeciLMForCausalLM) ships its own config class
# (configuration_decilm.py, run with trust_remote_code): DeciLMConfig subclasses transformers'
# LlamaConfig and adds `block_configs`, so every other field takes LlamaConfig's default.
DEFAULTS["nemotron-nas"] = {**DEFAULTS["llama"], "block_configs": None}

# Multimodal wrappers: the model type whose defaults the nested text_config takes
# (the wrapper class's sub_configs_defaults["text_config"]).
TEXT_CONFIG_TYPES = {
    "llava": "llama",  # transformers.LlavaConfig: SubConfigSpec(AutoConfig, model_type="llama")
    "gemma3": "gemma3_text",  # transformers.Gemma3Config: Gemma3TextConfig
    "llama4": "llama4_text",  # transformers.Llama4Config: Llama4TextConfig
}
# The config class each entry was copied from (for messages and the dev test).
SOURCES = {t: f"transformers.{c}" for t, c in {
    "llama": "LlamaConfig", "mistral": "MistralConfig", "mixtral": "MixtralConfig", "qwen2": "Qwen2Config",
    "qwen2_moe": "Qwen2MoeConfig", "qwen3": "Qwen3Config", "qwen3_moe": "Qwen3MoeConfig", "gemma": "GemmaConfig",
    "gemma2": "Gemma2Config", "gemma3_text": "Gemma3TextConfig", "phi3": "Phi3Config", "phi": "PhiConfig",
    "gpt_neox": "GPTNeoXConfig", "falcon": "FalconConfig", "olmo2": "Olmo2Config", "cohere": "CohereConfig",
    "cohere2": "Cohere2Config", "stablelm": "StableLmConfig", "starcoder2": "Starcoder2Config", "glm4": "Glm4Config",
    "gpt_oss": "GptOssConfig", "granite": "GraniteConfig", "smollm3": "SmolLM3Config",
    "deepseek_v2": "DeepseekV2Config", "deepseek_v3": "DeepseekV3Config", "llama4_text": "Llama4TextConfig",
    "nemotron_h": "NemotronHConfig", "jamba": "JambaConfig", "zamba2": "Zamba2Config", "falcon_h1": "FalconH1Config",
    "granitemoehybrid": "GraniteMoeHybridConfig", "qwen3_next": "Qwen3NextConfig", "minimax": "MiniMaxConfig",
    "gpt2": "GPT2Config", "gpt_bigcode": "GPTBigCodeConfig", "nemotron": "NemotronConfig", "mamba": "MambaConfig",
    "mamba2": "Mamba2Config", "falcon_mamba": "FalconMambaConfig", "bamba": "BambaConfig",
    # issue 13, acceptance 3
    "olmo": "OlmoConfig", "olmo3": "Olmo3Config", "olmoe": "OlmoeConfig", "exaone": "ExaoneConfig",
    "exaone4": "Exaone4Config", "internlm3": "InternLM3Config", "glm": "GlmConfig", "glm4_moe": "Glm4MoeConfig",
    "phimoe": "PhimoeConfig", "granitemoe": "GraniteMoeConfig", "granitemoeshared": "GraniteMoeSharedConfig",
    "ernie4_5": "Ernie4_5Config", "ernie4_5_moe": "Ernie4_5_MoeConfig",
    "hunyuan_v1_dense": "HunYuanDenseV1Config", "hunyuan_v1_moe": "HunYuanMoEV1Config",
    "seed_oss": "SeedOssConfig", "helium": "HeliumConfig", "apertus": "ApertusConfig",
    "persimmon": "PersimmonConfig", "opt": "OPTConfig", "gptj": "GPTJConfig", "bloom": "BloomConfig",
}.items()}
SOURCES["nemotron-nas"] = "DeciLMConfig (configuration_decilm.py, a transformers.LlamaConfig subclass)"
# Keys that come from __post_init__ rules or **kwargs, not from a declared field.
POST_INIT_KEYS = ("sliding_window_pattern", "full_attention_interval")


def canonical(model_type: str) -> str:
    """The table's name for a model type (Falcon's RefinedWeb aliases → falcon)."""
    return ALIASES.get(model_type, model_type)


def defaults_for(model_type: str | None) -> dict | None:
    """{field: default} for a model type (a copy), or None when attncli knows no defaults for it."""
    entry = DEFAULTS.get(canonical(model_type or ""))
    return None if entry is None else dict(entry)


def source_of(model_type: str | None) -> str | None:
    """The config class a type's defaults come from (`transformers.LlamaConfig`)."""
    return SOURCES.get(canonical(model_type or ""))


def text_config_type(wrapper_type: str | None) -> str | None:
    """The model type a multimodal wrapper's text_config defaults to (llava → llama)."""
    return TEXT_CONFIG_TYPES.get(wrapper_type or "")


def known_types() -> tuple[str, ...]:
    """Every model type with defaults, sorted."""
    return tuple(sorted(DEFAULTS))
