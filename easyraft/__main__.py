from easyraft.cli import main

raise SystemExit(main())
