"""`python -m specmem_cli` runs the `specmem` command line."""

from specmem_cli.cli import main

main()
