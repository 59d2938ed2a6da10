from cvtutor.cli import main

raise SystemExit(main())
