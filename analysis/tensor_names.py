"""One name for a tensor whichever head class saved it, so that models of one family share coordinates.

transformers saves a model's body under its `base_model_prefix` when a head class saved it and bare when
the body class did: `gpt2` itself has `h.0.attn.c_attn.weight`, a GPT2LMHeadModel fine-tune of it
`transformer.h.0.attn.c_attn.weight`; `bert-base-uncased` has `bert.encoder.*`, a sentence-transformers
fine-tune `encoder.*`. The sampler names every tensor without that prefix, so both are the same tensor.
"""

from __future__ import annotations

# transformers' `base_model_prefix` of the common architectures (registry: add one to make it comparable)
BASE_MODEL_PREFIXES = frozenset(
    {
        "model",  # llama, mistral, mixtral, qwen2, gemma, phi, opt, bart, whisper, olmo, ...
        "transformer",  # gpt2, gpt_bigcode, bloom, falcon, gptj, codegen, mpt, xlm, chatglm
        "gpt_neox",  # pythia, gpt-neox
        "bert",
        "roberta",  # roberta, xlm-roberta, camembert
        "deberta",
        "distilbert",
        "electra",
        "albert",
        "mpnet",
        "longformer",
        "vit",
        "wav2vec2",
        "hubert",
        "backbone",  # mamba
        "rwkv",
    }
)


def canonical_tensor_name(name: str) -> str:
    """`name` without a leading base-model prefix (`transformer.h.0.mlp.c_fc.weight` -> `h.0.mlp.c_fc.weight`);
    head tensors (`lm_head.weight`, `classifier.weight`) keep their names."""
    first, dot, rest = name.partition(".")
    return rest if dot and rest and first in BASE_MODEL_PREFIXES else name
