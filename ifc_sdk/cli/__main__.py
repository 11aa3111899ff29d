import sys

from ifc_sdk.cli import main

sys.exit(main())
