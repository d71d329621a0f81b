// End-to-end test of examples/chat in a real browser: Debian's chromium,
// driven by playwright-core (no browser download).
//
//   node chat.test.mjs <path-to-lariat-chat> <screenshot.png> [--tls]
//
// With --tls the same runs over https and wss://: a P-256 certificate is
// made for the run with `openssl req` (nothing committed) and chromium
// is told to accept it (--ignore-certificate-errors, ignoreHTTPSErrors).
//
// Starts lariat-chat on 127.0.0.1 with a port the kernel picks, opens two
// pages in one room and one in another, sends a message from each of the
// first two (button and Enter key), checks both pages show both messages
// and the third shows neither, saves a screenshot, stops the server with
// SIGTERM (the pages must see close 1001, the server exit 0). Every step
// has a timeout; the exit status is non-zero on any failure.
// $LARIAT_CHROMIUM overrides /usr/bin/chromium.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  console.error('FAIL: playwright-core is missing; run ' +
                '`npm ci --prefix tests/browser` first (' + err.message + ')');
  process.exit(1);
}

const [chatPath, screenshotPath, mode] = process.argv.slice(2);
const TLS = mode === '--tls';
if (!chatPath || !screenshotPath) {
  console.error('usage: node chat.test.mjs <lariat-chat> <screenshot.png>');
  process.exit(2);
}
const executablePath = process.env.LARIAT_CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;
const TOTAL_MS = 120000;
const ROOM = 'e2e';

let server = null;
let browser = null;

// Last resort: nothing may hang CI.
const watchdog = setTimeout(() => {
  console.error(`FAIL: the test took more than ${TOTAL_MS / 1000} s`);
  if (server && server.exitCode === null) server.kill('SIGKILL');
  process.exit(1);
}, TOTAL_MS);

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Resolves with the base URL once lariat-chat prints its first line.
let certDir = null;

function makeCert() {
  certDir = mkdtempSync(join(tmpdir(), 'lariat-chat-tls-'));
  const cert = join(certDir, 'cert.pem'), key = join(certDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
    'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
  { stdio: 'ignore' });
  return ['--tls-cert', cert, '--tls-key', key];
}

function startChat() {
  const tlsArgs = TLS ? makeCert() : [];
  server = spawn(chatPath, ['--host', '127.0.0.1', '--port', '0', ...tlsArgs],
                 { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.once('line', (line) => {
      const m = /^listening on (https?:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
      if (m) resolve(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
    server.once('error', reject);
    server.once('exit', (code, signal) =>
      reject(new Error(`lariat-chat exited early (${code ?? signal})`)));
  });
  return withTimeout(ready, STEP_MS, 'lariat-chat to listen');
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

function messages(page) {
  return page.$$eval('#messages li', (items) => items.map((li) => li.textContent));
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
  const baseUrl = await startChat();
  console.log(`lariat-chat at ${baseUrl}`);
  assert.equal(baseUrl.startsWith('https:'), TLS, 'served over https with --tls');
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: STEP_MS,
    // Playwright's default profile is a fresh temporary directory.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
           '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync',
           ...(TLS ? ['--ignore-certificate-errors'] : [])],
  });
  console.log(`chromium ${browser.version()}`);
  const context = await browser.newContext({ viewport: { width: 720, height: 420 },
                                            ignoreHTTPSErrors: TLS });
  const pageErrors = [];

  const alice = await openPage(context, baseUrl, ROOM, 'alice', pageErrors);
  const bob = await openPage(context, baseUrl, ROOM, 'bob', pageErrors);
  const carol = await openPage(context, baseUrl, 'elsewhere', 'carol', pageErrors);

  await alice.fill('#text', 'hello from alice');
  await alice.click('#send');
  await bob.fill('#text', 'hello from bob');
  await bob.press('#text', 'Enter');

  const both = ['alice: hello from alice', 'bob: hello from bob'];
  await waitForMessages(alice, both);
  await waitForMessages(bob, both);
  assert.equal(await alice.inputValue('#text'), '', 'input cleared after send');
  // Rooms are separate: by now carol would have got a wrong broadcast.
  await carol.waitForTimeout(300);
  const carolSees = await messages(carol);
  for (const line of both) assert.ok(!carolSees.includes(line), `carol saw "${line}"`);

  await alice.screenshot({ path: screenshotPath });
  console.log(`screenshot: ${screenshotPath}`);
  console.log('alice sees:', JSON.stringify(await messages(alice)));

  // A clean stop: every page sees close 1001, the server exits 0.
  const exited = once(server, 'exit');
  server.kill('SIGTERM');
  for (const page of [alice, bob, carol]) {
    await page.waitForFunction(
      () => document.getElementById('status').textContent === 'disconnected (1001)');
  }
  const [code, signal] = await withTimeout(exited, STEP_MS, 'lariat-chat to exit');
  assert.equal(code, 0, `lariat-chat exit status (signal ${signal})`);
  assert.deepEqual(pageErrors, [], 'no script errors in the pages');
  if (TLS) {
    const scheme = await alice.evaluate(() => location.protocol);
    assert.equal(scheme, 'https:');
  }
}

let failed = false;
try {
  await main();
  console.log(`PASS: chat works in chromium${TLS ? ' over wss://' : ''}`);
} catch (err) {
  failed = true;
  console.error(`FAIL: ${err.stack || err}`);
} finally {
  if (browser) await withTimeout(browser.close(), STEP_MS, 'browser.close').catch(() => {});
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  clearTimeout(watchdog);
  if (certDir) rmSync(certDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
