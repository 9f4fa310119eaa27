"""Networks of the world model: encoders, predictors, heads and the trainable container."""

from jepa_world_model.models.encoders import CNNEncoder, ImageNormalizer, OnnxFrozenEncoder, ViTEncoder, build_encoder
from jepa_world_model.models.heads import InverseDynamics, LatentDecoder, MacroActionEncoder, NoisePosterior
from jepa_world_model.models.predictors import CausalTransformerPredictor, MLPPredictor, build_predictor, frame_causal_mask
from jepa_world_model.models.world_model import DataDims, JEPAWorldModel

__all__ = [
    "CNNEncoder",
    "CausalTransformerPredictor",
    "DataDims",
    "ImageNormalizer",
    "InverseDynamics",
    "JEPAWorldModel",
    "LatentDecoder",
    "MLPPredictor",
    "MacroActionEncoder",
    "NoisePosterior",
    "OnnxFrozenEncoder",
    "ViTEncoder",
    "build_encoder",
    "build_predictor",
    "frame_causal_mask",
]
