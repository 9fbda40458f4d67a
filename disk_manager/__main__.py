from disk_manager.cli import main

main()
