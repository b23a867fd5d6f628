"""Shopping: WebShop-style product search and recommendation over a generated catalog."""

from hiergym.envs.registry import register_domain


def register() -> None:
    register_domain("hiergym/Shopping-v0", "hiergym.envs.shopping.env:ShoppingEnv")
    register_domain("hiergym/ShoppingList-v0", "hiergym.envs.shopping.env:ShoppingListEnv")
