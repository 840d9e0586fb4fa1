"""The architecture table: where a model's layers and projections live, checked before heavy work.

Plain data, no torch. A family is supported when its decoder layers hold the seven separate linear
projections LESA factorises (fused QKV / gate-up layouts are not).
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
    layers_path: str = "model.layers"             # ModuleList of decoder layers
    projections: dict[str, str] = field(default_factory=lambda: dict(PROJECTIONS))
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
}


class UnsupportedArchitecture(ValueError):
    pass


def supported() -> str:
    return ", ".join(sorted(ARCHS))


def spec_for(config: Any) -> ArchSpec:
    """Return the ArchSpec for a HF config (or a model_type string), or fail with what is supported."""
    family = config if isinstance(config, str) else getattr(config, "model_type", None)
    if family in ARCHS:
        return ARCHS[family]
    why = UNSUPPORTED.get(family, "not in the architecture table")
    raise UnsupportedArchitecture(
        f"architecture {family!r} is not supported ({why}). Supported: {supported()}. "
        "A family fits when each decoder layer has separate q/k/v/o and gate/up/down linear "
        "projections; add an ArchSpec to lesa.arch.ARCHS for it.")


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
