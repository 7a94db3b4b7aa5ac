"""``rotator vault policy``: the least-privilege Vault / OpenBao policy of the configuration.

Only the standard library at module level (``rotator --help`` stays fast); the handler
imports what it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    vault = commands.add_parser("vault", parents=[common], help="Vault / OpenBao helpers").add_subparsers(
        dest="vault_command", metavar="SUBCOMMAND", required=True
    )
    vault.add_parser(
        "policy",
        parents=[common],
        help="print the least-privilege HCL policy for the configured sources and references",
    )


def cmd_vault_policy(args: argparse.Namespace) -> int:
    from service.config import config_path, load_settings
    from service.vault.policy import vault_policy

    settings = load_settings(config_path(getattr(args, "config", None)))
    sys.stdout.write(vault_policy(settings))
    return 0


HANDLERS: dict[str, Handler] = {"vault policy": cmd_vault_policy}
