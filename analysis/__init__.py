"""Analysis: lineage, traits, the weight sampler, kinship, inference and merge advice."""
