"""RTL: Verilog design tasks verified by compile -> simulation -> formal equivalence -> PPA."""

from hiergym.envs.registry import register_domain


def register() -> None:
    register_domain("hiergym/RTL-v0", "hiergym.envs.rtl.env:RTLEnv")
