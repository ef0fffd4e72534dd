from workloads.cli import main

raise SystemExit(main())
