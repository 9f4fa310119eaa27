"""Perception node: camera image and proprioception to a latent state with the bundle's encoder."""
