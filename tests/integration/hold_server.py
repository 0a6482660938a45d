"""Helper process for the embedded-server tests: start a server, report it, then wait."""

import json
import sys
import time
from pathlib import Path

from copilotz_orm.embedded import EmbeddedServer

mode = sys.argv[1]
server = EmbeddedServer.start(mode, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
print(json.dumps({"pid": server.pid, "datadir": str(server.datadir), "url": server.url}), flush=True)
if sys.stdin.readline() == "close\n":
    server.close()
    print("closed", flush=True)
else:
    time.sleep(3600)
