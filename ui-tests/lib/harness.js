// Harness of the browser tests: builds and runs the real goscaler binary on
// free loopback ports, drives Debian's headless Chromium with playwright-core,
// saves screenshots, and stops everything it started.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const artifacts = path.resolve(here, '..', 'artifacts');

// Chromium: Debian's package (GOSCALER_CHROMIUM overrides the path).
export const chromiumPath = process.env.GOSCALER_CHROMIUM || '/usr/bin/chromium';

let builtBinary = null;

// goscalerBinary builds ./cmd/goscaler once per test file (GOSCALER_BIN
// names a binary built already).
export function goscalerBinary() {
  if (process.env.GOSCALER_BIN) return process.env.GOSCALER_BIN;
  if (builtBinary) return builtBinary;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'goscaler-ui-bin-'));
  const bin = path.join(dir, 'goscaler');
  execFileSync('go', ['build', '-o', bin, './cmd/goscaler'], { cwd: repoRoot, stdio: 'inherit' });
  builtBinary = bin;
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return bin;
}

export function tempDir(prefix) {
  // Resolved, so that it compares equal to what /proc shows.
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
}

// freePort returns a port free on 127.0.0.1 right now.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitFor polls cond (async, returning a truthy value when done) every
// interval until it holds, or throws after timeout with what and the last
// detail cond reported through its second result.
export async function waitFor(what, cond, { timeout = 30000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    let ok;
    try {
      ok = await cond();
    } catch (err) {
      last = String(err && err.message ? err.message : err);
      ok = false;
    }
    if (Array.isArray(ok)) {
      last = ok[1];
      ok = ok[0];
    }
    if (ok) return ok;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${last}`);
    await sleep(interval);
  }
}

// Goscaler is one goscaler process (server or demo) started by a test.
export class Goscaler {
  constructor(args, { cwd, logPath }) {
    this.args = args;
    this.logPath = logPath;
    this.out = '';
    const log = fs.openSync(logPath, 'a');
    fs.writeSync(log, `=== ui-tests ${new Date().toISOString()}: goscaler ${args.join(' ')}\n`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GOSCALER_')));
    this.proc = spawn(goscalerBinary(), args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (b) => { this.out += b; fs.appendFileSync(logPath, b); });
    this.proc.stderr.on('data', (b) => fs.appendFileSync(logPath, b));
    fs.closeSync(log);
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.running = true;
    this.exited.then(() => { this.running = false; });
  }

  // waitHealthy waits for /healthz at base.
  async waitHealthy(base, timeout = 60000) {
    await waitFor(`goscaler at ${base} to answer /healthz`, async () => {
      if (!this.running) throw new Error(`goscaler exited; log:\n${this.tail()}`);
      const r = await fetch(base + '/healthz');
      return r.ok;
    }, { timeout, interval: 200 });
  }

  // stop sends SIGINT and waits, then SIGKILL.
  async stop(timeout = 20000) {
    if (!this.running) return this.exited;
    this.proc.kill('SIGINT');
    const t = setTimeout(() => this.running && this.proc.kill('SIGKILL'), timeout);
    const res = await this.exited;
    clearTimeout(t);
    return res;
  }

  tail(n = 40) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

// killNodes kills the node processes of a cluster that a goscaler server
// started in dataDir (a server leaves its nodes running on purpose; the demo
// stops them itself). It finds them as the e2e tests do: by their
// GOSCALER_CLUSTER environment and their working directory.
export async function killNodes(cluster, dataDir) {
  const pids = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (fs.readlinkSync(`/proc/${pid}/cwd`) !== dataDir) continue;
      const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!env.includes(`GOSCALER_CLUSTER=${cluster}`)) continue;
      pids.push(pid);
    } catch {
      // gone, or not ours to read
    }
  }
  for (const pid of pids) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* not a group leader */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await waitFor('node processes to be gone', () => pids.every((pid) => !fs.existsSync(`/proc/${pid}/cwd`) || isZombie(pid)), { timeout: 10000 });
  return pids;
}

function isZombie(pid) {
  try {
    return /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

// Browser is one headless Chromium with a fresh profile, and its page.
// It records console errors, failed requests and every request that would
// leave loopback, so that tests can assert there were none.
export class Browser {
  static async launch() {
    const b = new Browser();
    b.profile = tempDir('goscaler-ui-chromium-');
    b.context = await chromium.launchPersistentContext(b.profile, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 1000 },
      timezoneId: 'UTC',
    });
    b.consoleErrors = [];
    b.outside = [];
    b.context.on('request', (req) => {
      const u = new URL(req.url());
      if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) && !['data:', 'about:'].includes(u.protocol)) {
        b.outside.push(req.url());
      }
    });
    b.page = b.context.pages()[0] || await b.context.newPage();
    b.watch(b.page);
    // Every confirmation is accepted, and remembered.
    b.dialogs = [];
    b.page.on('dialog', async (d) => {
      b.dialogs.push(d.message());
      await d.accept();
    });
    fs.mkdirSync(artifacts, { recursive: true });
    return b;
  }

  watch(page) {
    page.on('console', (msg) => {
      if (msg.type() === 'error') this.consoleErrors.push(`${page.url()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => this.consoleErrors.push(`${page.url()}: ${err.message}`));
  }

  // screenshot saves the whole page as artifacts/NAME.png.
  async screenshot(name) {
    const file = path.join(artifacts, name + '.png');
    await this.page.screenshot({ path: file, fullPage: true });
    return file;
  }

  async close() {
    await this.context.close();
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}

// api calls goscaler's REST API.
export async function api(base, method, p, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}
