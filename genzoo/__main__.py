"""``python -m genzoo`` (and ``torchrun -m genzoo``) runs the CLI."""

from genzoo.cli import main

if __name__ == "__main__":
    main()
