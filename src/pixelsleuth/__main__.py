from pixelsleuth.outputs.cli import main

main()
