"""An example hiergym plugin: ``register()`` is called by hiergym through the entry point."""

from hiergym.envs.registry import register_domain


def register() -> None:
    register_domain("hiergym/Arith-v0", "hiergym_arith.env:ArithEnv")
