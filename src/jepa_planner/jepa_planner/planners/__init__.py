"""Latent MPC planners over one model level: CEM, MPPI, gradient (Adam), plus their shared base."""

from jepa_planner.planners.base import Planner, PlanResult, PlanStats, level_spec
from jepa_planner.planners.cem import CEMPlanner
from jepa_planner.planners.gradient import GradientPlanner
from jepa_planner.planners.mppi import MPPIPlanner

PLANNER_TYPES: dict[str, type[Planner]] = {"cem": CEMPlanner, "mppi": MPPIPlanner, "gradient": GradientPlanner}

__all__ = ["PLANNER_TYPES", "CEMPlanner", "GradientPlanner", "MPPIPlanner", "PlanResult", "PlanStats", "Planner", "level_spec"]
