import sys

from wafer_sglang.cli.main import main

sys.exit(main())
