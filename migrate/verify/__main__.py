"""`python -m migrate.verify OLD NEW [options]`: the `tf-migrate verify` command."""

from migrate.verify.command import main

if __name__ == "__main__":
    main()
