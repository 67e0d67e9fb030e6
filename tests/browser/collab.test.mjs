// The collab example in a real browser: Debian's Chromium driven by
// playwright-core. Text typed in one page appears in the other; a page that
// joins late finds the document as it is; a page that works offline keeps its
// edits, and on reconnecting they merge with the edits the others made
// meanwhile, the same text in every page. The hub refuses what is not a Yjs
// update. Over each transport (a server of its own each, so one document per
// run), with a screenshot of each run in test-results/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');

let browser;

before(async () => {
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

async function open(server, transport) {
  const context = await browser.newContext({ viewport: { width: 900, height: 400 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.url}/?${new URLSearchParams({ transport })}`);
  await connected(page);
  return { page, context, errors };
}

async function connected(page) {
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), undefined, {
    timeout: 10_000,
  });
}

const shown = (page) => page.inputValue('#text');

async function waitForText(page, wanted, timeout = 10_000) {
  await h.eventually(() => shown(page), (text) => text === wanted, { timeout, interval: 50, what: `the text ${JSON.stringify(wanted)}` });
}

/** Types `keys` at the start or the end of the page's text, as a person would. */
async function type(page, where, keys) {
  await page.focus('#text');
  await page.keyboard.press(where === 'start' ? 'Control+Home' : 'Control+End');
  await page.keyboard.type(keys);
}

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  describe(`collab over ${transport}`, () => {
    test('pages edit one text; a late joiner sees it; offline edits merge', h.withServer('collab', {}, async (server) => {
      const ada = await open(server, transport);
      const bob = await open(server, transport);
      const pages = [ada, bob];
      try {
        assert.equal(await ada.page.textContent('#status'), `connected (${transport.replace('WebSockets', 'WebSocket')})`);
        await type(ada.page, 'end', 'hello from ada');
        await waitForText(bob.page, 'hello from ada');
        await type(bob.page, 'end', ' and bob');
        await waitForText(ada.page, 'hello from ada and bob');

        // Cat comes late and finds the document from the server.
        const cat = await open(server, transport);
        pages.push(cat);
        await waitForText(cat.page, 'hello from ada and bob');

        // Bob works offline: his edit stays with him, Ada's does not reach him.
        await bob.page.check('#offline');
        await bob.page.waitForFunction(() => document.getElementById('status').textContent === 'offline: edits are kept here');
        await type(bob.page, 'start', 'bob was offline: ');
        await type(ada.page, 'end', ', ada stayed');
        await waitForText(cat.page, 'hello from ada and bob, ada stayed');
        assert.equal(await shown(bob.page), 'bob was offline: hello from ada and bob');
        assert.equal(await shown(ada.page), 'hello from ada and bob, ada stayed');

        // Back online: both edits in every page.
        await bob.page.uncheck('#offline');
        await connected(bob.page);
        const merged = 'bob was offline: hello from ada and bob, ada stayed';
        for (const { page } of [bob, ada, cat]) await waitForText(page, merged);

        // Typing on in the middle of the merged text still reaches the others.
        await bob.page.focus('#text');
        await bob.page.keyboard.press('Control+Home');
        for (let i = 0; i < 'bob was offline:'.length; i += 1) await bob.page.keyboard.press('ArrowRight');
        await bob.page.keyboard.type(' (now back)');
        await waitForText(cat.page, 'bob was offline: (now back) hello from ada and bob, ada stayed');

        // Ada and Bob type at once at either end; each keeps typing where
        // their caret is while the other's keys arrive.
        await Promise.all([type(ada.page, 'end', ' [ada typing]'), type(bob.page, 'start', '[bob typing] ')]);
        const both = '[bob typing] bob was offline: (now back) hello from ada and bob, ada stayed [ada typing]';
        for (const { page } of [bob, ada, cat]) await waitForText(page, both);

        await bob.page.screenshot({ path: path.join(ARTIFACTS, `collab-${transport}.png`) });
        assert.deepEqual(pages.flatMap((p) => p.errors), []);
      } finally {
        await Promise.allSettled(pages.map((p) => p.context.close()));
      }
    }, { timeout: 60_000 }));
  });
}

describe('collab refuses', () => {
  test('what is not a Yjs update, and oversized messages, with the hub\'s error', h.withServer('collab', {}, async (server) => {
    const ada = await open(server, 'WebSockets');
    try {
      // A real update with a few bytes changed (a client id beyond 53 bits):
      // yrs's debug build panics on it rather than returning an error.
      const mangled = [
        1, 5, 198, 212, 200, 182, 220, 250, 244, 2, 0, 4, 1, 4, 116, 101, 120, 116, 2, 104, 101, 129, 198, 212, 200,
        182, 220, 250, 244, 91, 1, 3, 132, 198, 212, 200, 182, 220, 250, 244, 2, 4, 2, 32, 119, 132, 198, 212, 200,
        182, 220, 132, 244, 2, 6, 4, 111, 114, 108, 100, 196, 198, 212, 200, 182, 220, 250, 244, 2, 6, 198, 212, 200,
        182, 220, 250, 244, 2, 7, 3, 97, 98, 99, 1, 198, 212, 200, 182, 220, 250, 244, 2, 1, 2, 3,
      ];
      const refused = await ada.page.evaluate((mangled) =>
        Promise.all(
          [
            () => window.collabHub.update(btoa(String.fromCharCode(...mangled))),
            () => window.collabHub.update('not base64!'),
            () => window.collabHub.update(btoa('\u00ff\u00ff\u00ff\u00ff')),
            () => window.collabHub.update('A'.repeat(300_000)),
            () => window.collabHub.join('%%%'),
          ].map((call) => call().then(() => 'accepted', (e) => e.message)),
        ),
      mangled);
      const prefix = (method) => `An unexpected error occurred invoking '${method}' on the server. HubException: `;
      assert.deepEqual(refused, [
        `${prefix('update')}the update is not a valid Yjs update`,
        `${prefix('update')}the update is not base64: Invalid symbol 32, offset 3.`,
        `${prefix('update')}the update does not decode: while trying to read more data (expected: 1 bytes), an unexpected end of buffer was reached`,
        `${prefix('update')}the update is 300000 characters long; at most 262144 are accepted`,
        `${prefix('join')}the state vector is not base64: Invalid symbol 37, offset 0.`,
      ]);
      // The document is untouched: typing still works.
      await type(ada.page, 'end', 'still fine');
      const bob = await open(server, 'WebSockets');
      await waitForText(bob.page, 'still fine');
      await bob.context.close();
    } finally {
      await ada.context.close();
    }
  }, { timeout: 60_000 }));
});
