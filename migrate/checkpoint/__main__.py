from migrate.checkpoint.command import main

main()
