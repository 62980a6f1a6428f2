import sys

from cytophen.cli import main

sys.exit(main())
