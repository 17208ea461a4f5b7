import sys

from wafer_sglang.cli import main

sys.exit(main())
