"""The zoo's tiny causal LM: Llama-style tensor names and config, plain torch, state-dict in and out.

Weights live in a flat state dict keyed exactly like a Hugging Face Llama checkpoint, so the same
dict is trained, merged, saved as safetensors and sampled without renaming.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ZooArch:
    """Shapes of one zoo architecture; two archs with different shapes exercise incompatibility."""

    name: str = "zoo-llama"  # registry key
    vocab_size: int = 32  # digits, task tokens, separator, padding
    hidden_size: int = 64  # residual width
    intermediate_size: int = 128  # SwiGLU inner width
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 32  # longest sequence a task makes
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def config_json(self, **extra: Any) -> dict[str, Any]:
        """The Hugging Face `config.json` of this architecture."""
        cfg = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "torch_dtype": "float32",
            "hidden_act": "silu",
            "num_key_value_heads": self.num_attention_heads,
            "tie_word_embeddings": False,
            "bos_token_id": None,
            "eos_token_id": None,
        }
        cfg.update({k: v for k, v in asdict(self).items() if k != "name"})
        cfg.update(extra)
        return cfg


# The zoo's architectures; "wide" has other shapes, so its models can never be merged with "llama" ones.
ARCHS: dict[str, ZooArch] = {
    "llama": ZooArch(),
    "wide": ZooArch(name="zoo-wide", hidden_size=96, intermediate_size=160, num_hidden_layers=3),
    # ~10.5M values (42 MB in float32): large enough that a sample is a small part of a model
    "large": ZooArch(
        name="zoo-large", hidden_size=512, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8
    ),
}


def init_state(arch: ZooArch, generator: torch.Generator) -> StateDict:
    """Fresh random weights (normal(0, 0.02) matrices, unit norms) under Llama tensor names."""
    h, i, v = arch.hidden_size, arch.intermediate_size, arch.vocab_size

    def mat(rows: int, cols: int) -> torch.Tensor:
        return torch.randn(rows, cols, generator=generator) * 0.02

    sd: StateDict = {"model.embed_tokens.weight": mat(v, h)}  # (vocab, hidden)
    for layer in range(arch.num_hidden_layers):
        p = f"model.layers.{layer}."
        for proj in ("q", "k", "v", "o"):
            sd[f"{p}self_attn.{proj}_proj.weight"] = mat(h, h)  # (hidden, hidden)
        sd[f"{p}mlp.gate_proj.weight"] = mat(i, h)  # (inter, hidden)
        sd[f"{p}mlp.up_proj.weight"] = mat(i, h)
        sd[f"{p}mlp.down_proj.weight"] = mat(h, i)  # (hidden, inter)
        sd[f"{p}input_layernorm.weight"] = torch.ones(h)
        sd[f"{p}post_attention_layernorm.weight"] = torch.ones(h)
    sd["model.norm.weight"] = torch.ones(h)
    sd["lm_head.weight"] = mat(v, h)  # (vocab, hidden)
    return sd


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotary position embedding on (batch, heads, seq, head_dim), half-split like Llama."""
    t, d = x.shape[-2:]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))  # (d/2,)
    ang = torch.arange(t, dtype=torch.float32)[:, None] * inv[None, :]  # (seq, d/2)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)  # (seq, d)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(sd: StateDict, arch: ZooArch, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (batch, seq, vocab) of the causal LM with weights `sd` on `tokens` (batch, seq)."""
    eps, nh = arch.rms_norm_eps, arch.num_attention_heads
    x = F.embedding(tokens, sd["model.embed_tokens.weight"].float())  # (batch, seq, hidden)
    b, t, h = x.shape
    for layer in range(arch.num_hidden_layers):
        p = f"model.layers.{layer}."
        y = _rms_norm(x, sd[f"{p}input_layernorm.weight"].float(), eps)
        q, k, v = (
            F.linear(y, sd[f"{p}self_attn.{n}_proj.weight"].float()).view(b, t, nh, h // nh).transpose(1, 2)
            for n in ("q", "k", "v")
        )  # (batch, heads, seq, head_dim)
        q, k = _rope(q, arch.rope_theta), _rope(k, arch.rope_theta)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, h)
        x = x + F.linear(att, sd[f"{p}self_attn.o_proj.weight"].float())
        y = _rms_norm(x, sd[f"{p}post_attention_layernorm.weight"].float(), eps)
        gate = F.silu(F.linear(y, sd[f"{p}mlp.gate_proj.weight"].float()))
        x = x + F.linear(
            gate * F.linear(y, sd[f"{p}mlp.up_proj.weight"].float()), sd[f"{p}mlp.down_proj.weight"].float()
        )
    x = _rms_norm(x, sd["model.norm.weight"].float(), eps)
    return F.linear(x, sd["lm_head.weight"].float())  # (batch, seq, vocab)


def arch_of(sd: StateDict) -> ZooArch:
    """The registered architecture whose shapes match a state dict."""
    h = sd["model.embed_tokens.weight"].shape[1]
    n = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.layers."))
    for arch in ARCHS.values():
        if arch.hidden_size == h and arch.num_hidden_layers == n:
            return arch
    raise ValueError(f"no zoo architecture with hidden_size={h} and {n} layers")
