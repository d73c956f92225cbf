"""pytest configuration for the whole repository: notebooks executed by ``pytest --nbmake`` run in their
small-settings mode (tiny configs that finish on a CPU); the kernel inherits this environment variable."""

import os

os.environ.setdefault("PUREJAX_AD_SMALL", "1")
