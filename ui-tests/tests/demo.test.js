// `goscaler demo` in headless Chromium: it prints the UI's address, the
// dashboard loads, the counter graph has data points and keeps getting new
// ones, and the cluster page shows the cluster scale out under the demo's
// load and back in after it, without a reload.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Browser, Goscaler, api, freePort, tempDir, waitFor } from '../lib/harness.js';

describe('goscaler demo, in Chromium', () => {
  let dir, dataDir, demo, browser, ui;

  before(async () => {
    dir = tempDir('goscaler-ui-demo-');
    dataDir = path.join(dir, 'data');
    const port = await freePort();
    demo = new Goscaler(['demo', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { cwd: dir, logPath: path.join(dir, 'demo.log') });
    ui = await waitFor('the demo to print the UI address', () => {
      if (!demo.running) throw new Error(`the demo exited:\n${demo.tail()}`);
      const m = demo.out.match(/web UI:\s+(http:\/\/127\.0\.0\.1:\d+\/)/);
      return m ? m[1] : null;
    }, { timeout: 60000 });
    assert.equal(ui, `http://127.0.0.1:${port}/`);
    await demo.waitHealthy(ui.replace(/\/$/, ''));
    browser = await Browser.launch();
  });

  after(async () => {
    if (browser) await browser.close();
    if (demo) {
      const res = await demo.stop();
      assert.equal(res.code, 0, `the demo exited with ${JSON.stringify(res)} after SIGINT:\n${demo.tail()}`);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the dashboard loads with the demo cluster, open to an operator on loopback', async () => {
    const { page } = browser;
    await page.goto(ui);
    const row = page.locator('tr[data-cluster="demo"]');
    await row.waitFor();
    assert.match(await row.innerText(), /2 – 6/);
    assert.match(await page.textContent('.role'), /operator · open/);
    await waitFor('the first node to come up', async () => {
      await page.reload();
      return /[12]\s*\/\s*2/.test(await page.locator('tr[data-cluster="demo"] td:nth-child(2)').innerText());
    }, { timeout: 60000, interval: 1000 });
    await browser.screenshot('demo-dashboard');
  });

  test('the counter graph has data points and gets new ones live', async () => {
    const { page } = browser;
    await page.goto(ui + 'clusters/demo');
    await page.evaluate(() => { window.__noReload = true; });
    const chart = page.locator('.chart[data-src*="/counters/inflight"]');
    const first = await waitFor('the inflight graph to have points', async () => {
      const n = Number(await chart.getAttribute('data-points'));
      return n > 0 && n;
    }, { timeout: 30000 });
    assert.ok(await chart.locator('canvas').count() > 0, 'uPlot drew the graph');
    const legend = await chart.locator('.u-legend').innerText();
    assert.match(legend, /cluster avg/);
    assert.match(legend, /scale-out: above 5/, 'the scale-out threshold is drawn');
    assert.match(legend, /scale-in: below 2/, 'the scale-in threshold is drawn');
    await waitFor('new points without a reload', async () => Number(await chart.getAttribute('data-points')) > first, { timeout: 15000 });
    assert.ok(await page.evaluate(() => window.__noReload === true));
    await browser.screenshot('demo-cluster-graph');
  });

  test('the cluster page shows the demo scaling out under load and back in after it', async () => {
    const { page } = browser;
    await page.goto(ui + 'clusters/demo');
    await page.evaluate(() => { window.__noReload = true; });
    const inService = async () => {
      const t = (await page.textContent('#in-service')).trim();
      const m = t.match(/^(\d+) \/ (\d+)$/);
      assert.ok(m, `in service / desired reads ${t}`);
      return [Number(m[1]), Number(m[2])];
    };
    let peak = 0;
    await waitFor('the demo to scale out (more than 2 in service)', async () => {
      const [n] = await inService();
      peak = Math.max(peak, n);
      return [n > 2, `in service ${n}`];
    }, { timeout: 240000, interval: 1000 });
    // The scale form follows the new desired size; the scale-out activity is listed.
    await waitFor('the scale form to show the new desired size', async () => {
      const [, desired] = await inService();
      const v = await page.inputValue('input[name=desired]');
      return [desired > 2 && v === String(desired), `input ${v}, desired ${desired}`];
    }, { timeout: 10000 });
    const recent = await page.locator('#recent').innerText();
    assert.match(recent, /deploy node/);
    await browser.screenshot('demo-scaled-out');
    await waitFor('the demo to scale back in to 2', async () => {
      const [n, desired] = await inService();
      peak = Math.max(peak, n);
      return [n === 2 && desired === 2, `in service ${n} / ${desired}, peak ${peak}`];
    }, { timeout: 360000, interval: 1000 });
    assert.ok(await page.evaluate(() => window.__noReload === true), 'the page followed without a reload');
    assert.ok(peak > 2);
    await browser.screenshot('demo-scaled-in');

    // The activities page tells why: scale-out and scale-in firings with their steps.
    await page.goto(ui + 'activities?cluster=demo&kind=trigger');
    const causes = (await page.locator('#activity-rows td.cause').allInnerTexts()).join('\n');
    assert.match(causes, /trigger scale-out: avg inflight [\d.]+ > 5 for \d+s/);
    assert.match(causes, /trigger scale-in: avg inflight [\d.]+ < 2 for \d+s/);
    await browser.screenshot('demo-activities');
    const acts = await api(ui.replace(/\/$/, ''), 'GET', '/api/v1/activities?cluster=demo&kind=remove_node&status=succeeded');
    assert.ok(acts.json.length > 0, 'a node was removed');
  });

  test('no console errors (CSP included), nothing fetched beyond loopback', () => {
    assert.deepEqual(browser.consoleErrors, []);
    assert.deepEqual(browser.outside, []);
  });
});
