"""Places shared by every test process."""

import os
import tempfile

# One bytecode cache for every pytest run the tests start (servers started by tests inherit
# it): with a fresh one per data dir, each run would compile the interpreter's library again
# and rewrite every plugin's asserts.
PYCACHE_DIR = os.path.join(tempfile.gettempdir(), f"ptd-test-pycache-{os.getuid()}")
