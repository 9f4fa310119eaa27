"""A plugin package outside the suite: ``pip install -e tests/plugins/jepa_toy_plugins`` registers it."""

from setuptools import setup

setup(
    name="jepa_toy_plugins",
    version="0.0.1",
    packages=["jepa_toy_plugins"],
    entry_points={
        "jepa.planners": ["random_shooting = jepa_toy_plugins:RandomShootingPlanner"],
        "jepa.cost_terms": ["first_action = jepa_toy_plugins:FirstActionCost"],
        "jepa.encoders": ["mean_colour = jepa_toy_plugins:MeanColourEncoder"],
        "jepa.worlds": ["small_two_rooms = jepa_toy_plugins:small_two_rooms"],
    },
)
