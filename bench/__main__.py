"""``python -m bench``: the load tester (see bench/cli.py)."""

from __future__ import annotations

import sys


def main() -> int:
    from bench.cli import main as cli_main  # noqa: PLC0415 - keeps `python -m bench --help` light

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
