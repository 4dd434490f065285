// The web UI of `goscaler server` with API tokens, in headless Chromium:
// logging in, firing a trigger from the cluster page and finding its activity
// on the activities page (which updates itself), scaling, maintenance, the
// node page, a form without its CSRF token refused, a viewer who cannot scale.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Browser, Goscaler, api, freePort, killNodes, tempDir, waitFor } from '../lib/harness.js';

const operatorToken = 'op-' + crypto.randomBytes(16).toString('hex');
const viewerToken = 'view-' + crypto.randomBytes(16).toString('hex');

function configYAML({ listen, dataDir, lb }) {
  return `server:
  listen: ${listen}
  data_dir: ${dataDir}
  tick: 500ms
  api_tokens:
    - {token: ${operatorToken}, role: operator}
    - {token: ${viewerToken}, role: viewer}
clusters:
  - name: shop
    min: 2
    max: 4
    provider:
      type: process
      command: ["{{.Executable}}", "demo-node", "--listen", "{{.Address}}", "--node-id", "{{.NodeID}}"]
      stop_timeout: 5s
    load_balancer: {type: builtin, listen: "${lb}", health_interval: 1s}
    health_check: {type: http, path: /healthz, interval: 1s, timeout: 1s}
    boot_timeout: 30s
    counters:
      - {name: inflight, type: http, url: "http://{{.Address}}/stats", path: inflight_avg, interval: 1s, timeout: 1s}
    triggers:
      - name: announce
        counter: inflight
        above: 1000000
        for: 1m
        actions:
          - {type: local_script, shell: 'echo "announced {{.Cluster}}: {{.Cause}}"'}
`;
}

describe('goscaler server with API tokens, in Chromium', () => {
  let dir, dataDir, base, srv, browser;

  before(async () => {
    dir = tempDir('goscaler-ui-server-');
    dataDir = path.join(dir, 'data');
    fs.mkdirSync(dataDir);
    const listen = `127.0.0.1:${await freePort()}`;
    base = `http://${listen}`;
    fs.writeFileSync(path.join(dir, 'goscaler.yaml'), configYAML({ listen, dataDir, lb: `127.0.0.1:${await freePort()}` }));
    srv = new Goscaler(['server', '--config', 'goscaler.yaml'], { cwd: dir, logPath: path.join(dir, 'server.log') });
    await srv.waitHealthy(base);
    await waitFor('2 nodes of shop in service', async () => {
      const r = await api(base, 'GET', '/api/v1/clusters/shop', { token: operatorToken });
      return [r.status === 200 && r.json.in_service === 2, r.text.slice(0, 200)];
    }, { timeout: 60000 });
    browser = await Browser.launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
    if (dataDir) await killNodes('shop', dataDir);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('pages need a login; a wrong token is refused, an operator token logs in', async () => {
    const { page } = browser;
    await page.goto(base + '/clusters/shop');
    assert.equal(new URL(page.url()).pathname, '/login', 'a page without a session goes to the login form');
    await page.fill('input[name=token]', 'not-a-token-of-this-server');
    await page.click('button[type=submit]');
    await page.waitForSelector('.flash.error');
    assert.match(await page.textContent('.flash.error'), /not one of the server's api_tokens/);
    assert.equal(await page.inputValue('input[name=token]'), '', 'the tried token is not put back into the page');
    await browser.screenshot('server-login-refused');

    await page.fill('input[name=token]', operatorToken);
    await page.click('button[type=submit]');
    await page.waitForURL(base + '/clusters/shop');
    assert.equal((await page.textContent('.role')).trim(), 'operator');
    const html = await page.content();
    assert.ok(!html.includes(operatorToken) && !html.includes(viewerToken), 'no token is ever rendered');
    const cookie = (await browser.context.cookies()).find((c) => c.name === 'goscaler_session');
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `session cookie ${JSON.stringify(cookie)}`);
  });

  test('the dashboard lists the cluster with its sizes, health and a sparkline', async () => {
    const { page } = browser;
    await page.goto(base + '/');
    const row = page.locator('tr[data-cluster="shop"]');
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /2\s*\/\s*2/, 'in service / desired');
    assert.match(text, /2 – 4/, 'min – max');
    await waitFor('the sparkline to have points', async () => {
      await page.reload();
      return (await page.locator('tr[data-cluster="shop"] svg.sparkline polyline').count()) === 1;
    }, { timeout: 20000, interval: 1500 });
    await browser.screenshot('server-dashboard');
  });

  test('firing a trigger from the cluster page produces an activity that the activities page shows', async () => {
    const { page } = browser;
    await page.goto(base + '/clusters/shop');
    await page.locator('tr[data-trigger="announce"] button', { hasText: 'Fire now' }).click();
    await page.waitForSelector('.flash');
    const flash = await page.textContent('.flash');
    assert.match(flash, /Trigger announce fired/);
    assert.ok(browser.dialogs.some((m) => m.startsWith('Fire trigger announce of shop now?')), `confirmation asked: ${browser.dialogs}`);
    const href = await page.getAttribute('.flash a', 'href');
    assert.match(href, /^\/activities\/\d+$/);
    await browser.screenshot('server-cluster-fired');

    // The activities page lists it, with its cause.
    await page.goto(base + '/activities');
    const row = page.locator(`#activity-rows tr:has(td:first-child a[href="${href}"])`);
    await row.waitFor();
    assert.match(await row.innerText(), /trigger announce fired by hand in the web UI/);
    // And its steps finish; the page follows without a reload.
    await row.locator(`a[href="${href}"]`).click();
    await page.waitForURL(base + href);
    await page.evaluate(() => { window.__noReload = true; });
    await page.locator('li.step.st-succeeded').waitFor({ timeout: 30000 });
    assert.ok(await page.evaluate(() => window.__noReload === true), 'the activity page updated itself');
    assert.match(await page.locator('li.step pre.log').first().innerText(), /announced shop: trigger announce fired by hand in the web UI/);
    await browser.screenshot('server-activity');
  });

  test('the activities page shows new activities live, filtered', async () => {
    const { page } = browser;
    await page.goto(base + '/activities?cluster=shop&kind=trigger');
    await page.evaluate(() => { window.__noReload = true; });
    const before = await page.locator('#activity-rows tr').count();
    const r = await api(base, 'POST', '/api/v1/clusters/shop/triggers/announce/fire', { token: operatorToken });
    assert.equal(r.status, 202, r.text);
    await page.locator(`#activity-rows a[href="/activities/${r.json.id}"]`).waitFor({ timeout: 15000 });
    assert.ok(await page.evaluate(() => window.__noReload === true), 'no reload');
    assert.equal(await page.locator('#activity-rows tr').count(), before + 1);
    const kinds = await page.locator('#activity-rows tr td:nth-child(4)').allInnerTexts();
    assert.ok(kinds.every((k) => k.startsWith('trigger')), `only triggers listed: ${kinds}`);
    await browser.screenshot('server-activities-filtered');
  });

  test('a form without its CSRF token is refused and changes nothing', async () => {
    const { page } = browser;
    await page.goto(base + '/clusters/shop');
    await page.evaluate(() => document.querySelector('form[action="/clusters/shop/scale"] input[name=csrf_token]').remove());
    await page.fill('form[action="/clusters/shop/scale"] input[name=desired]', '3');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url() === base + '/clusters/shop/scale'),
      page.click('form[action="/clusters/shop/scale"] button[type=submit]'),
    ]);
    assert.equal(resp.status(), 403);
    assert.match(await page.textContent('h1'), /Form expired/);
    assert.match(await page.textContent('main'), /no valid CSRF token/);
    await browser.screenshot('server-csrf-refused');
    const c = await api(base, 'GET', '/api/v1/clusters/shop', { token: operatorToken });
    assert.equal(c.json.desired, 2, 'desired unchanged');
  });

  test('scaling from the cluster page: the page follows the new node into service', async () => {
    const { page } = browser;
    await page.goto(base + '/clusters/shop');
    await page.evaluate(() => { window.__noReload = true; });
    await page.fill('form[action="/clusters/shop/scale"] input[name=desired]', '3');
    await page.click('form[action="/clusters/shop/scale"] button[type=submit]');
    await page.waitForSelector('.flash');
    assert.match(await page.textContent('.flash'), /The desired size of shop is now 3/);
    assert.ok(browser.dialogs.some((m) => m.startsWith('Set the desired size of shop to 3 node(s)?')), `dialogs: ${browser.dialogs}`);
    await page.evaluate(() => { window.__noReload = true; });
    await waitFor('3 / 3 in service on the page', async () => [(await page.textContent('#in-service')).trim() === '3 / 3', await page.textContent('#in-service')], { timeout: 45000 });
    assert.ok(await page.evaluate(() => window.__noReload === true), 'updated without a reload');
    assert.equal(await page.locator('#nodes tr[data-node]').count(), 3);
    await browser.screenshot('server-cluster-scaled');
    // Back to 2.
    await page.fill('form[action="/clusters/shop/scale"] input[name=desired]', '2');
    await page.click('form[action="/clusters/shop/scale"] button[type=submit]');
    await waitFor('2 / 2 in service on the page', async () => (await page.textContent('#in-service')).trim() === '2 / 2', { timeout: 45000 });
  });

  test('maintenance from the cluster page takes a node out and back', async () => {
    const { page } = browser;
    await page.goto(base + '/clusters/shop');
    const node = await page.locator('#nodes tr[data-node]').first().getAttribute('data-node');
    await page.locator(`tr[data-node="${node}"] button`, { hasText: 'Maintenance' }).click();
    await page.waitForSelector('.flash');
    assert.match(await page.textContent('.flash'), new RegExp(`Node ${node} is in maintenance`));
    await page.locator(`tr[data-node="${node}"] .s-maintenance`).waitFor();
    assert.match(await page.locator(`tr[data-node="${node}"]`).innerText(), /not checked: maintenance/);
    let n = await api(base, 'GET', `/api/v1/clusters/shop/nodes/${node}`, { token: operatorToken });
    assert.equal(n.json.maintenance, true);
    await browser.screenshot('server-maintenance');
    await page.locator(`tr[data-node="${node}"] button`, { hasText: 'End maintenance' }).click();
    await page.waitForSelector('.flash');
    assert.match(await page.textContent('.flash'), new RegExp(`Node ${node} is out of maintenance`));
    n = await api(base, 'GET', `/api/v1/clusters/shop/nodes/${node}`, { token: operatorToken });
    assert.equal(n.json.maintenance, false);
    const acts = await api(base, 'GET', '/api/v1/activities?cluster=shop&kind=maintenance', { token: operatorToken });
    assert.equal(acts.json.length, 2, acts.text);
  });

  test('the node page shows its life, health checks, graph and output', async () => {
    const { page } = browser;
    const nodes = await api(base, 'GET', '/api/v1/clusters/shop/nodes', { token: operatorToken });
    const node = nodes.json.find((n) => n.state === 'in_service').id;
    await page.goto(base + `/clusters/shop/nodes/${node}`);
    assert.equal((await page.textContent('h1')).trim(), node);
    const life = await page.locator('#node-life li').allInnerTexts();
    assert.ok(life.length >= 4, `life: ${life}`);
    assert.match(life.join('\n'), /in service/);
    await page.locator('#node-health td .health.ok').first().waitFor({ timeout: 10000 });
    assert.match(await page.locator('pre.log').last().innerText(), new RegExp(`starting node ${node} of cluster shop`));
    await waitFor('the node graph to have points', async () => Number(await page.getAttribute('.chart', 'data-points')) > 0, { timeout: 20000 });
    assert.equal(await page.locator('.chart canvas').count() > 0, true, 'uPlot drew a canvas');
    await browser.screenshot('server-node');
  });

  test('a viewer sees everything and cannot scale', async () => {
    const { page } = browser;
    await page.goto(base + '/');
    await page.click('button:has-text("Log out")');
    await page.waitForURL(/\/login/);
    await page.fill('input[name=token]', viewerToken);
    await page.click('button[type=submit]');
    await page.waitForURL(base + '/');
    await page.goto(base + '/clusters/shop');
    assert.equal((await page.textContent('.role')).trim(), 'viewer');
    assert.equal(await page.locator('form[action="/clusters/shop/scale"]').count(), 0, 'no scale form for a viewer');
    assert.equal(await page.locator('button:has-text("Fire now")').count(), 0, 'no fire button for a viewer');
    assert.equal(await page.locator('button:has-text("Maintenance")').count(), 0, 'no maintenance button for a viewer');
    assert.match(await page.textContent('.actions'), /logged in as a viewer/);
    await browser.screenshot('server-viewer');
    // Posting the form anyway, with the viewer's own CSRF token: refused.
    const status = await page.evaluate(async () => {
      const csrf = document.querySelector('form[action="/logout"] input[name=csrf_token]').value;
      const r = await fetch('/clusters/shop/scale', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf_token: csrf, desired: '4' }) });
      return r.status;
    });
    assert.equal(status, 403);
    // And through the API with a viewer's token.
    const r = await api(base, 'POST', '/api/v1/clusters/shop/scale', { token: viewerToken, body: { desired: 4 } });
    assert.equal(r.status, 403, r.text);
    assert.equal((await api(base, 'GET', '/api/v1/clusters/shop', { token: viewerToken })).json.desired, 2);
  });

  test('no console errors (CSP included), nothing fetched beyond loopback', () => {
    assert.deepEqual(browser.consoleErrors.filter((e) => !/status of 403/.test(e) && !/status of 401/.test(e)), []);
    assert.deepEqual(browser.outside, []);
  });
});
