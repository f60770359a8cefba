"""`python -m ldrld_mini ...` is the same as the `ldrld-mini` command."""
import sys

from ldrld_mini.cli import main

if __name__ == "__main__":
    sys.exit(main())
