"""JEPA world model: encoders, action-conditioned predictors at several time scales, training, export to model bundles, the world-model node."""
