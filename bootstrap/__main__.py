from bootstrap.console import main

main()
