"""The architecture table: where a model's layers and projections live, checked before heavy work.

Plain data, no torch. A family is supported when its decoder layers hold the seven separate linear
projections LESA factorises (fused QKV / gate-up layouts are not).

Per-layer config lists (``layer_types``: sliding or full attention) are extended by one rule for
every method: a new layer takes the entry of the first source layer of its slot (the copied layer
for copy/identity slots, the lower neighbour k for a layer built between k and k+1), and original
layers keep theirs. On Gemma 3 the attention type also picks the RoPE base (10k local, 1M global), so
a copy computes exactly what its original does (LLaMA Pro stays the identity, SOLAR's stack keeps
each layer's function); re-laying the every-6th full-attention pattern over the new depth would
instead change the window and RoPE base of frozen original layers. transformers keeps an explicit
``layer_types`` from config.json on load (it only derives one from ``sliding_window_pattern`` when
the list is absent), so saved grown models reload with the same pattern.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The seven linear weight types, short name -> attribute path inside one decoder layer.
PROJECTIONS: dict[str, str] = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}
# The released code factorises in this order; we keep it for identical RNG use per type.
RELEASED_ORDER = ("down", "up", "gate", "q", "k", "v", "o")
# Projections whose output feeds the residual stream: zeroing them makes a block the identity.
OUTPUT_PROJECTIONS = ("o", "down")


@dataclass(frozen=True)
class ArchSpec:
    family: str                                   # config.model_type
    label: str = ""                               # human name shown in messages (e.g. "Gemma 3")
    layers_path: str = "model.layers"             # ModuleList of decoder layers
    projections: dict[str, str] = field(default_factory=lambda: dict(PROJECTIONS))
    # Every norm of a layer; new predicted/averaged layers take them from layer 0 or the neighbours'
    # mean (Plan.norm_source). Gemma's RMSNorm scales by (1 + weight): averaging weights averages gains.
    norms: tuple[str, ...] = ("input_layernorm", "post_attention_layernorm")
    bias_flags: tuple[str, ...] = ()              # config flags that switch biases on
    fixed_biases: tuple[str, ...] = ()            # projections that always carry a bias
    per_layer_lists: tuple[str, ...] = ("layer_types",)  # config lists with one entry per layer
    depth_key: str = "num_hidden_layers"

    def biased(self, config: Any) -> tuple[str, ...]:
        """Short names of the projections that carry a bias under this config."""
        names = set(self.fixed_biases)
        if "attention_bias" in self.bias_flags and getattr(config, "attention_bias", False):
            names |= {"q", "k", "v", "o"}
        if "mlp_bias" in self.bias_flags and getattr(config, "mlp_bias", False):
            names |= {"gate", "up", "down"}
        return tuple(n for n in PROJECTIONS if n in names)


ARCHS: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", bias_flags=("attention_bias", "mlp_bias")),
    "mistral": ArchSpec("mistral"),
    "qwen2": ArchSpec("qwen2", fixed_biases=("q", "k", "v")),
    "qwen3": ArchSpec("qwen3", bias_flags=("attention_bias",),
                      norms=("input_layernorm", "post_attention_layernorm",
                             "self_attn.q_norm", "self_attn.k_norm")),
    # Gemma 3 text model (Gemma3ForCausalLM, e.g. gemma-3-270m): q/k norms, a norm after attention and
    # after the MLP (sandwich), a full-attention layer every 6th. The post-attention and
    # post-feed-forward RMSNorms of a zero output are exactly zero (0 * rsqrt(0 + eps) * (1 + w)), so
    # LLaMA Pro's zeroed o_proj/down_proj still give an exact identity block.
    "gemma3_text": ArchSpec("gemma3_text", label="Gemma 3", bias_flags=("attention_bias",),
                            norms=("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                                   "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm")),
}
# Families known NOT to fit, with the reason (checked first for a precise message).
UNSUPPORTED: dict[str, str] = {
    "phi3": "fused qkv_proj and gate_up_proj",
    "gpt2": "fused c_attn (Conv1D) projections",
    "gpt_neox": "fused query_key_value projection",
    "falcon": "fused query_key_value projection",
    "bloom": "fused query_key_value projection",
    "mixtral": "mixture-of-experts MLP (LESA's MoE support is preliminary in the paper)",
    "qwen2_moe": "mixture-of-experts MLP",
    "gemma3": "the multimodal Gemma 3 wrapper (its text layers live under model.language_model); "
              "load the text-only Gemma3ForCausalLM (model_type gemma3_text), as gemma-3-270m is",
}


class UnsupportedArchitecture(ValueError):
    pass


def supported() -> str:
    """The supported families in table order, with their human names where they differ."""
    return ", ".join(f"{k} ({v.label})" if v.label else k for k, v in ARCHS.items())


def spec_for(config: Any) -> ArchSpec:
    """Return the ArchSpec for a HF config (or a model_type string), or fail with what is supported."""
    family = config if isinstance(config, str) else getattr(config, "model_type", None)
    if family in ARCHS:
        return ARCHS[family]
    why = UNSUPPORTED.get(family, "not in the architecture table")
    raise UnsupportedArchitecture(
        f"architecture {family!r} is not supported ({why}). Supported: {supported()}. "
        "A family fits when each decoder layer has separate q/k/v/o and gate/up/down linear "
        "projections; add an ArchSpec to lesa.arch.ARCHS for it.")  # old module path kept: this text enters cache keys (lesa.core.cachekeys)


def check_model(model: Any) -> ArchSpec:
    """Validate a loaded model against its spec: layers path, projections, shapes, biases."""
    spec = spec_for(model.config)
    layers = get_layers(model, spec)
    depth = getattr(model.config, spec.depth_key)
    if len(layers) != depth:
        raise UnsupportedArchitecture(f"{spec.layers_path} has {len(layers)} layers but config says {depth}")
    biased = set(spec.biased(model.config))
    for i, layer in enumerate(layers):
        for short, path in spec.projections.items():
            mod = get_submodule(layer, path)
            if mod is None or not hasattr(mod, "weight") or mod.weight.ndim != 2:
                raise UnsupportedArchitecture(
                    f"layer {i} has no linear {path} (family {spec.family!r}); supported: {supported()}")
            if (getattr(mod, "bias", None) is not None) != (short in biased):
                raise UnsupportedArchitecture(
                    f"layer {i} {path}: bias presence differs from the table for {spec.family!r}")
            ref = get_submodule(layers[0], path).weight.shape
            if mod.weight.shape != ref:
                raise UnsupportedArchitecture(f"layer {i} {path} has shape {tuple(mod.weight.shape)}, "
                                              f"layer 0 has {tuple(ref)}: layers must share shapes")
    return spec


def get_submodule(root: Any, path: str) -> Any:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def get_layers(model: Any, spec: ArchSpec | None = None) -> Any:
    spec = spec or spec_for(model.config)
    layers = get_submodule(model, spec.layers_path)
    if layers is None:
        raise UnsupportedArchitecture(f"model has no {spec.layers_path} (family {spec.family!r})")
    return layers
