// The move-shape example in a real browser: Debian's Chromium driven by
// playwright-core. A square dragged with the mouse in one page lands at the
// same place in the other; a page that floods the hub with positions
// (bypassing its own throttle) costs the other page one update per server
// tick, not one per position; nonsense positions get the hub's error and move
// nothing. Over each transport, with a screenshot of each run in test-results/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import * as h from '../js/harness.mjs';
import { launchChromium } from './chromium.mjs';

const ARTIFACTS = path.join(h.ROOT, 'test-results');
// The server's tick (examples/move_shape.rs).
const TICK_MS = 40;

let server;
let browser;

before(async () => {
  server = await h.startServer('move_shape');
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function open(transport) {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.url}/?${new URLSearchParams({ transport })}`);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'), undefined, {
    timeout: 10_000,
  });
  return { page, context, errors };
}

/** Where the square is, as the page draws it. */
function where(page) {
  return page.$eval('#shape', (s) => ({ left: s.style.left, top: s.style.top }));
}

async function waitForPlace(page, wanted, timeout = 10_000) {
  await page.waitForFunction(
    (w) => {
      const s = document.getElementById('shape');
      return s.style.left === w.left && s.style.top === w.top;
    },
    wanted,
    { timeout },
  );
}

const received = (page) => page.$eval('#received', (e) => Number(e.textContent));

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  describe(`move_shape over ${transport}`, () => {
    test('a square dragged in one page moves in the other, one update per tick at most', h.logged(() => server, async (t) => {
      const ada = await open(transport);
      const bob = await open(transport);
      try {
        assert.equal(await ada.page.textContent('#status'), `connected (${transport.replace('WebSockets', 'WebSocket')})`);

        // Ada drags the square to the middle of the board (from wherever the
        // previous run left it).
        const start = await where(ada.page);
        const box = await ada.page.locator('#shape').boundingBox();
        const from = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
        await ada.page.mouse.move(from.x, from.y);
        await ada.page.mouse.down();
        const board = await ada.page.locator('#board').boundingBox();
        await ada.page.mouse.move(board.x + board.width / 2 - 40, board.y + board.height / 2 + 30, { steps: 60 });
        await ada.page.mouse.up();
        const dropped = await where(ada.page);
        assert.notDeepEqual(dropped, start);
        // Bob sees it where Ada dropped it (same board size: same pixels).
        await waitForPlace(bob.page, dropped);
        // Ada's page sent fewer positions than the mouse made moves.
        const sent = Number(await ada.page.textContent('#sent'));
        assert.ok(sent >= 1 && sent < 60, `Ada sent ${sent} positions for 60 mouse moves`);

        // A page that skips its throttle and sends 200 positions at once:
        // Bob gets the last one, in a handful of updates, not 200.
        const before = await received(bob.page);
        const elapsed = await ada.page.evaluate(async () => {
          const start = performance.now();
          const calls = [];
          for (let i = 1; i <= 200; i += 1) calls.push(window.shapeHub.updateModel({ left: i / 400, top: i / 400 }));
          await Promise.all(calls);
          return performance.now() - start;
        });
        const last = await ada.page.evaluate(() => {
          const board = document.getElementById('board');
          const shape = document.getElementById('shape');
          const px = (f, span) => `${Math.round(f * Math.max(1, span))}px`;
          return {
            left: px(0.5, board.clientWidth - shape.offsetWidth),
            top: px(0.5, board.clientHeight - shape.offsetHeight),
          };
        });
        await waitForPlace(bob.page, last);
        const updates = (await received(bob.page)) - before;
        // One per tick while the positions came in, plus the tick after.
        const bound = Math.ceil(elapsed / TICK_MS) + 2;
        t.diagnostic(`${transport}: ${updates} updates for 200 positions in ${Math.round(elapsed)} ms`);
        assert.ok(updates >= 1 && updates <= bound, `Bob got ${updates} updates for 200 positions in ${Math.round(elapsed)} ms (at most ${bound})`);

        await bob.page.screenshot({ path: path.join(ARTIFACTS, `move_shape-${transport}.png`) });

        // Nonsense is refused with the hub's error, and moves nothing.
        const refused = await bob.page.evaluate(() =>
          Promise.all([
            window.shapeHub.updateModel({ left: 2, top: 0.5 }).then(() => 'accepted', (e) => e.message),
            window.shapeHub.updateModel({ left: 0.5, top: -0.25 }).then(() => 'accepted', (e) => e.message),
          ]),
        );
        assert.deepEqual(refused, [
          "An unexpected error occurred invoking 'updateModel' on the server. HubException: the shape's left must be a number from 0 to 1, not 2",
          "An unexpected error occurred invoking 'updateModel' on the server. HubException: the shape's top must be a number from 0 to 1, not -0.25",
        ]);
        // Bob's own next move reaches Ada, so Ada has seen all that came before it.
        await bob.page.evaluate(() => window.shapeHub.updateModel({ left: 1, top: 1 }));
        const corner = await bob.page.evaluate(() => {
          const board = document.getElementById('board');
          const shape = document.getElementById('shape');
          return { left: `${board.clientWidth - shape.offsetWidth}px`, top: `${board.clientHeight - shape.offsetHeight}px` };
        });
        await waitForPlace(ada.page, corner);
        assert.deepEqual([...ada.errors, ...bob.errors], []);
      } finally {
        await Promise.allSettled([ada.context.close(), bob.context.close()]);
      }
    }, { timeout: 60_000 }));
  });
}
