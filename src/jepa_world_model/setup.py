"""ament_python package jepa_world_model: installs with colcon on a ROS 2 install, or with pip into the project venv."""

from glob import glob

from setuptools import find_packages, setup

package_name = "jepa_world_model"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="JEPA agent suite maintainers",
    maintainer_email="maintainers@jepa-agent.dev",
    description="JEPA world model: encoders, action-conditioned predictors at several time scales, training, export to model bundles, the world-model node.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "world_model_node = jepa_world_model.world_model_node:main",
            "jepa-offline-eval = jepa_world_model.offline_eval:main",
            "jepa-train = jepa_world_model.train:main",
            "jepa-export = jepa_world_model.bundle:export_main",
            "jepa-bundle = jepa_world_model.bundle:bundle_main",
        ],
        # Plugin points (jepa_common.plugins); "onnx" is built into build_encoder (it needs the bundle's bytes).
        "jepa.encoders": [
            "cnn = jepa_world_model.models.encoders:CNNEncoder",
            "vit = jepa_world_model.models.encoders:ViTEncoder",
        ],
    },
)
