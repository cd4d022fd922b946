"""`python -m api` is the `dreambooth` command."""

from api.cli import main

main()
