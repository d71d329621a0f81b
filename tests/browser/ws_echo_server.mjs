// A Node `ws` server for the client tests (bindings/python/tests/
// test_client.py): subprotocol "chat" and permessage-deflate accepted;
// echoes every message, and on "!push" sends 1,000 numbered messages that
// the client must echo back in order, then reports "pushed ok" or
// "pushed bad". Prints its port on stdout; exits when stdin closes.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: { threshold: 0 },
  handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
});

wss.on('connection', (ws, req) => {
  const ext = req.headers['sec-websocket-extensions'] || '';
  ws.send(`hello ${ws.protocol} ${ws.extensions || ''}`.trim());
  let pushing = -1, ok = true;
  ws.on('message', (data, isBinary) => {
    const text = data.toString();
    if (pushing >= 0) {
      ok = ok && text === `p${pushing}`;
      if (++pushing === 1000) {
        pushing = -1;
        ws.send(ok ? 'pushed ok' : 'pushed bad');
      } else {
        ws.send(`p${pushing}`);
      }
      return;
    }
    if (text === '!push') {
      pushing = 0;
      ws.send('p0');
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  void ext;
});

wss.on('listening', () => {
  process.stdout.write(`${wss.address().port}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
