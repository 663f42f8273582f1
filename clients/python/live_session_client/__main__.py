import sys

from live_session_client.cli import main

sys.exit(main())
