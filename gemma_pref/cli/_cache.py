# SPDX-License-Identifier: Apache-2.0
"""``gemma-pref cache list`` and ``cache remove``: the user cache's entries."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import CLIError, say


def cmd_cache_list(args: argparse.Namespace) -> int:
    from ..backend.default_model import gemma_pref_home
    from ..backend.home_cache import format_table, list_cache

    entries = list_cache(args.kind)
    home = gemma_pref_home()
    if args.json:
        say(
            json.dumps(
                {
                    "home": str(home),
                    "entries": [e.to_dict() for e in entries],
                    "total_size": sum(e.size for e in entries if e.own),
                },
                indent=2,
            )
        )
        return 0
    say(f"gemma-pref cache: {home}")
    say(format_table(entries) if entries else "(empty)")
    return 0


def cmd_cache_remove(args: argparse.Namespace) -> int:
    from ..backend.default_model import gemma_pref_home
    from ..backend.home_cache import format_size, list_cache, remove_entries

    if bool(args.keys) == bool(args.all):
        args.parser.error("give the KEYs of the entries to remove, or --all (not both)")
    if args.kind and not args.all:
        args.parser.error("--kind applies to --all; a KEY names its kind itself")
    home = gemma_pref_home()
    if args.all:
        listed = list_cache(args.kind)
        chosen = [e for e in listed if e.own]
        kept = len(listed) - len(chosen)
        what = f"{len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'}"
        what += f" ({format_size(sum(e.size for e in chosen))})"
        if not chosen:
            say(f"nothing to remove: no entry of gemma-pref's in {str(home)!r}")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise CLIError(
                    f"--all would remove {what} from {str(home)!r}; pass --yes to remove "
                    "them without asking (the input is not a terminal, so nothing is asked)"
                )
            answer = input(f"Remove {what} from {home}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                say("nothing removed")
                return 0
    else:
        chosen, kept = args.keys, 0
    removed = remove_entries(chosen)
    for entry in removed:
        say(f"removed {entry.key} ({format_size(entry.size)})")
    n = len(removed)
    freed = format_size(sum(e.size for e in removed))
    message = f"freed {freed} in {n} entr{'y' if n == 1 else 'ies'}"
    if kept:
        message += f"; kept {kept} not gemma-pref's"
    say(message)
    return 0
