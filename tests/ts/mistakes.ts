// Deliberate mistakes: each line marked `// expect TSxxxx` must fail to compile
// with that error, and nothing else may. The test reads the markers.

import type { HubConnection } from "@microsoft/signalr";

import { ChatProxy, registerChatClient } from "../../examples/generated/chat";
import { ConformanceProxy } from "../../examples/generated/conformance";

export async function mistakes(connection: HubConnection): Promise<void> {
  const hub = new ConformanceProxy(connection);
  await hub.add("1", 2); // expect TS2345
  await hub.echoo("typo"); // expect TS2551
  const n: string = await hub.add(1, 2); // expect TS2322
  await hub.echoPerson({ name: "ada", age: 36 }); // expect TS2345
  void n;

  const chat = new ChatProxy(connection);
  await chat.sendMessage("lobby"); // expect TS2554
  registerChatClient(connection, { // expect TS2345
    receiveMessage() {},
    userJoined() {},
    userLeft() {},
  });
}
