from wesctl.cli import main

main()
