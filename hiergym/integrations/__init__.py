"""Trainer adapters: TRL (``hiergym.integrations.trl``) and verifiers
(``hiergym.integrations.verifiers``), each behind the ``train`` extra
(``pip install 'hiergym[train]'``). Nothing here is imported by ``import hiergym``.
"""
