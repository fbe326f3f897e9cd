"""``python -m WSSSCamLib ...`` is the same as the ``wssscam`` command."""

import sys

from .cli import main

sys.exit(main())
