"""`python -m migrate` is the same program as the `tf-migrate` console script."""

from migrate.cli import main

if __name__ == "__main__":
    main()
