"""Geometry: tool-integrated geometric reasoning over cached 3D scenes (TIGeR-style, text only)."""

from hiergym.envs.registry import register_domain


def register() -> None:
    register_domain("hiergym/Geometry-v0", "hiergym.envs.geometry.env:GeometryEnv")
