from cnnlab.cli.train import main

main()
