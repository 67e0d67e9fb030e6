// The collab page: a textarea bound to a Yjs text. Local edits become Yjs
// updates sent to the hub, which applies them to the server's copy and relays
// them to the other pages; theirs arrive through `applyUpdate`. On every
// (re)connection the page joins with its state vector: it gets what it is
// missing and sends what the server is missing (its edits made offline).
// Updates travel as base64 strings. `?transport=` forces a transport.

import * as Y from "yjs";
import { fromBase64, toBase64 } from "lib0/buffer";
import { CollabProxy, registerCollabClient } from "/generated/collab.js";
import { $, hubConnection } from "/page.js";

const connection = hubConnection("/collab");
const hub = new CollabProxy(connection);
// For the console (and the browser test).
window.collabHub = hub;

const doc = new Y.Doc();
const text = doc.getText("text");
const area = $("text");
// The origin of updates that came from the hub: they are not sent back.
const REMOTE = Symbol("remote");
// Whether the server has this connection as an editor: until then local
// edits stay in `doc` and go out with the join's difference.
let joined = false;

function fail(e) {
  $("error").textContent = e.message;
}

doc.on("update", (update, origin) => {
  if (origin === REMOTE || !joined) return;
  hub.update(toBase64(update)).catch(fail);
});

registerCollabClient(connection, {
  applyUpdate(update) {
    Y.applyUpdate(doc, fromBase64(update), REMOTE);
  },
});

// A local edit: the textarea's change as one delete and one insert.
area.addEventListener("input", () => {
  const before = text.toString();
  const after = area.value;
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start += 1;
  let end = 0;
  while (
    end < before.length - start && end < after.length - start &&
    before[before.length - 1 - end] === after[after.length - 1 - end]
  ) end += 1;
  doc.transact(() => {
    if (before.length - start - end > 0) text.delete(start, before.length - start - end);
    if (after.length - start - end > 0) text.insert(start, after.slice(start, after.length - end));
  });
});

// A remote edit: show it, keeping the caret where it was in the text.
text.observe((event) => {
  if (event.transaction.origin !== REMOTE) return;
  const moved = (position) => {
    let index = 0;
    for (const op of event.delta) {
      if (index > position) break;
      if (op.retain !== undefined) index += op.retain;
      else if (op.insert !== undefined) {
        position += op.insert.length;
        index += op.insert.length;
      } else if (op.delete !== undefined) {
        position -= Math.min(op.delete, position - index);
      }
    }
    return position;
  };
  const [start, end] = [moved(area.selectionStart), moved(area.selectionEnd)];
  area.value = text.toString();
  area.setSelectionRange(start, end);
});

async function join() {
  joined = false;
  const answer = await hub.join(toBase64(Y.encodeStateVector(doc)));
  Y.applyUpdate(doc, fromBase64(answer.update), REMOTE);
  joined = true;
  // What the server is missing: edits made while this page was away.
  const mine = Y.encodeStateAsUpdate(doc, fromBase64(answer.stateVector));
  await hub.update(toBase64(mine));
}

async function connected() {
  await join();
  const transport = connection.connection?.transport?.constructor?.name?.replace("Transport", "");
  $("status").textContent = transport ? `connected (${transport})` : "connected";
  area.disabled = false;
}

$("offline").addEventListener("change", async () => {
  const offline = $("offline").checked;
  document.body.classList.toggle("offline", offline);
  $("error").textContent = "";
  try {
    if (offline) {
      joined = false;
      await connection.stop();
      $("status").textContent = "offline: edits are kept here";
    } else {
      $("status").textContent = "connecting…";
      await connection.start();
      await connected();
    }
  } catch (e) {
    fail(e);
  }
});

connection.onreconnecting(() => {
  joined = false;
  $("status").textContent = "reconnecting…";
});
connection.onreconnected(() => connected().catch(fail));
connection.onclose(() => {
  joined = false;
  if (!$("offline").checked) $("status").textContent = "disconnected";
});
connection.start().then(connected).catch((e) => {
  $("status").textContent = `failed: ${e.message}`;
});
