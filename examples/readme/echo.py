import sys

import lariat


class Echo:
    def websocket_handle(self, conn, frame):
        if frame.opcode == lariat.Opcode.TEXT:
            conn.send_text(frame.text)
        elif frame.opcode == lariat.Opcode.BINARY:
            conn.send_binary(frame.data)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
with lariat.Server("127.0.0.1", port) as server:
    server.route("/", Echo)
    server.run()
