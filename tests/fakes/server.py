"""Starting and stopping the local fake providers' HTTP servers (127.0.0.1, a free port, a daemon thread)."""

import threading
from http.server import ThreadingHTTPServer


def start_server(handler_class) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def stop_server(server) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
