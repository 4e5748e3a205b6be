from ggonnx.cli import main

raise SystemExit(main())
