"""Sampling: latent packing, noise schedule, guidance and the one sampler loop shared by all tasks."""
