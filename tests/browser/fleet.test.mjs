// Two lariat-chat servers on two ports sharing one Redis, in a real
// browser (Debian's chromium through playwright-core): a message typed in
// a page served by one appears in a page served by the other, both ways.
//
//   node fleet.test.mjs <path-to-lariat-chat> <screenshot.png>
//
// Starts its own redis-server on a free 127.0.0.1 port (never the system
// service), two `lariat-chat --port 0 --redis URL`, waits until both are
// subscribed to the room's channel (PUBSUB NUMSUB), then chats. Stops the
// servers with SIGTERM (exit 0 each) and Redis. Every step has a timeout;
// the exit status is non-zero on any failure. $LARIAT_CHROMIUM overrides
// /usr/bin/chromium.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  console.error('FAIL: playwright-core is missing; run ' +
                '`npm ci --prefix tests/browser` first (' + err.message + ')');
  process.exit(1);
}

const [chatPath, screenshotPath] = process.argv.slice(2);
if (!chatPath || !screenshotPath) {
  console.error('usage: node fleet.test.mjs <lariat-chat> <screenshot.png>');
  process.exit(2);
}
const executablePath = process.env.LARIAT_CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;
const TOTAL_MS = 120000;
const ROOM = 'fleet';

const children = [];
let browser = null;

const watchdog = setTimeout(() => {
  console.error(`FAIL: the test took more than ${TOTAL_MS / 1000} s`);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  process.exit(1);
}, TOTAL_MS);

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// One RESP command on a fresh connection; resolves with the raw reply.
function redisCommand(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let reply = '';
    sock.once('error', reject);
    sock.on('data', (d) => {
      reply += d.toString('latin1');
      if (reply.endsWith('\r\n')) { sock.end(); resolve(reply); }
    });
    sock.write(`*${args.length}\r\n` +
               args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
  });
}

async function startRedis(port) {
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
                                       '--save', '', '--appendonly', 'no',
                                       '--loglevel', 'warning'],
                      { stdio: 'ignore' });
  children.push(redis);
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    try {
      if ((await redisCommand(port, ['PING'])).startsWith('+PONG')) return redis;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Resolves with the base URL once lariat-chat listens and its bridge's two
// connections are up (it says so on stderr).
function startChat(redisUrl) {
  const chat = spawn(chatPath, ['--host', '127.0.0.1', '--port', '0', '--redis', redisUrl],
                     { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(chat);
  const ready = new Promise((resolve, reject) => {
    let url = null, up = 0;
    const done = () => { if (url && up === 2) resolve({ chat, url }); };
    createInterface({ input: chat.stdout }).once('line', (line) => {
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
      if (!m) return reject(new Error(`unexpected first line: ${line}`));
      url = m[1];
      done();
    });
    createInterface({ input: chat.stderr }).on('line', (line) => {
      process.stderr.write(`  [chat] ${line}\n`);
      if (/redis (subscriber|publisher) connection up/.test(line)) { ++up; done(); }
    });
    chat.once('error', reject);
    chat.once('exit', (code, signal) =>
      reject(new Error(`lariat-chat exited early (${code ?? signal})`)));
  });
  return withTimeout(ready, STEP_MS, 'lariat-chat to listen and join Redis');
}

async function openPage(context, baseUrl, room, nick, pageErrors) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => pageErrors.push(`${nick}: ${err.message}`));
  await page.goto(`${baseUrl}?room=${room}&nick=${nick}`);
  await page.waitForFunction(
    () => document.getElementById('status').textContent === 'connected');
  return page;
}

async function waitForMessages(page, wanted) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#messages li')]
        .map((li) => li.textContent);
      return want.every((w) => have.includes(w));
    },
    wanted);
}

async function main() {
  const redisPort = await freePort();
  await startRedis(redisPort);
  const redisUrl = `redis://127.0.0.1:${redisPort}/`;
  const a = await startChat(redisUrl);
  const b = await startChat(redisUrl);
  console.log(`lariat-chat at ${a.url} and ${b.url}, Redis at ${redisUrl}`);
  assert.notEqual(a.url, b.url);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: STEP_MS,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 720, height: 420 } });
  const pageErrors = [];
  const alice = await openPage(context, a.url, ROOM, 'alice', pageErrors);
  const bob = await openPage(context, b.url, ROOM, 'bob', pageErrors);

  // Both servers subscribed to the room's channel before anyone speaks.
  const deadline = Date.now() + STEP_MS;
  while (!(await redisCommand(redisPort, ['PUBSUB', 'NUMSUB', `lariat-chat:room:${ROOM}`]))
      .endsWith(':2\r\n')) {
    if (Date.now() > deadline) throw new Error('the servers did not both subscribe');
    await new Promise((r) => setTimeout(r, 50));
  }

  await alice.fill('#text', 'hello from server A');
  await alice.click('#send');
  await waitForMessages(bob, ['alice: hello from server A']);
  await bob.fill('#text', 'hello from server B');
  await bob.press('#text', 'Enter');
  const both = ['alice: hello from server A', 'bob: hello from server B'];
  await waitForMessages(alice, both);
  await waitForMessages(bob, both);
  await bob.screenshot({ path: screenshotPath });
  console.log(`screenshot: ${screenshotPath}`);

  for (const { chat } of [a, b]) {
    const exited = once(chat, 'exit');
    chat.kill('SIGTERM');
    const [code, signal] = await withTimeout(exited, STEP_MS, 'lariat-chat to exit');
    assert.equal(code, 0, `lariat-chat exit status (signal ${signal})`);
  }
  assert.deepEqual(pageErrors, [], 'no script errors in the pages');
}

let failed = false;
try {
  await main();
  console.log('PASS: two chat servers share a room through Redis');
} catch (err) {
  failed = true;
  console.error(`FAIL: ${err.stack || err}`);
} finally {
  if (browser) await withTimeout(browser.close(), STEP_MS, 'browser.close').catch(() => {});
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
