from prizeflow_ops.cli import main

main()
