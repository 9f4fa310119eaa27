"""jepa_common: the layer every other package of the suite builds on (no torch, no node of its own).

- ``ros_common``: parameters, QoS presets, image conversion, the node runner.
- ``episodes`` / ``bag_format``: the Episode types and the rosbag2 schema ``jepa-collect`` writes.
- ``convert``: the one Twist <-> action convention and the one latent distance.
- ``plugins``: entry-point registry for planners, cost terms, worlds and encoders.
"""
