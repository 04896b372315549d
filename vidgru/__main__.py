from vidgru.cli import main

main()
