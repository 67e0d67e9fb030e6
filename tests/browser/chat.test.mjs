// The chat example in a real browser: Debian's Chromium driven by playwright-core.
// Two pages join a room and exchange messages over each transport; a page in
// another room sees none of it. A screenshot of each run is saved under
// test-results/ as an artifact.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');

let server;
let browser;

before(async () => {
  server = await h.startServer('chat');
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function open(transport, name, room) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const query = new URLSearchParams({ transport, name, room });
  await page.goto(`${server.url}/?${query}`);
  // The page joins by itself when name and room are in the URL.
  await page.waitForFunction(
    (who) => [...document.querySelectorAll('#members li')].some((li) => li.textContent === who),
    name,
    { timeout: 10_000 },
  );
  return { page, context, errors };
}

async function send(page, text) {
  await page.fill('#text', text);
  await page.click('#send-button');
}

function messages(page) {
  return page.$$eval('#messages li', (items) => items.map((li) => li.textContent));
}

async function waitForMessage(page, text, timeout = 10_000) {
  await page.waitForFunction(
    (wanted) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent === wanted),
    text,
    { timeout },
  );
}

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  describe(`chat over ${transport}`, () => {
    test('two pages in a room chat; a page in another room sees nothing', h.logged(() => server, async () => {
      const room = h.unique('r');
      const elsewhere = h.unique('o');
      const ada = await open(transport, 'ada', room);
      const bob = await open(transport, 'bob', room);
      const eve = await open(transport, 'eve', elsewhere);
      try {
        // The page shows which transport the client chose, by its class name
        // (WebSocketTransport, ServerSentEventsTransport, LongPollingTransport).
        assert.equal(await ada.page.textContent('#status'), `connected (${transport.replace('WebSockets', 'WebSocket')})`);
        // Ada sees Bob arrive; both are listed as online.
        await waitForMessage(ada.page, `bob joined ${room}`);
        await ada.page.waitForFunction(
          () => ['ada', 'bob', 'eve'].every((n) => [...document.querySelectorAll('#online li')].some((li) => li.textContent === n)),
          undefined,
          { timeout: 10_000 },
        );

        await send(ada.page, 'hello bob');
        await waitForMessage(bob.page, 'adahello bob');
        await send(bob.page, 'hi ada');
        await waitForMessage(ada.page, 'bobhi ada');

        // Eve's room works, and nothing of the other room reached it.
        await send(eve.page, 'anyone?');
        await waitForMessage(eve.page, 'eveanyone?');
        // Eve's own message came after the others' were sent: had any reached
        // her, it would be listed before it.
        assert.deepEqual(await messages(eve.page), ['eveanyone?']);
        // And Bob's next message, sent after Eve's, marks where Eve's would be at Ada.
        await send(bob.page, 'last');
        await waitForMessage(ada.page, 'boblast');
        assert.deepEqual(await messages(ada.page), [`bob joined ${room}`, 'adahello bob', 'bobhi ada', 'boblast']);

        await ada.page.screenshot({ path: path.join(ARTIFACTS, `chat-${transport}.png`) });

        // Bob closes his page: Ada is told he left. A long-polling page that
        // closes sends nothing; the server notices when no poll comes for 15 s.
        await bob.context.close();
        await waitForMessage(ada.page, `bob left ${room}`, transport === 'LongPolling' ? 25_000 : 10_000);
        assert.deepEqual([...ada.errors, ...eve.errors], []);
      } finally {
        await Promise.allSettled([ada.context.close(), bob.context.close(), eve.context.close()]);
      }
    }, { timeout: 60_000 }));
  });
}
