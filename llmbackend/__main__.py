"""Effectful: ``python -m llmbackend ...`` runs the command line, as ``llmbackend ...`` does."""

from llmbackend.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
