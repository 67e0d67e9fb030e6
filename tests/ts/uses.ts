// Uses every call the generated conformance, chat and dashboard proxies offer, with the
// types the Rust hubs declare. Must compile under `tsc --strict`.

import { HubConnectionBuilder, Subject } from "@microsoft/signalr";
import type { HubConnection, IStreamResult } from "@microsoft/signalr";

import { ChatProxy, registerChatClient } from "../../examples/generated/chat";
import type { ChatClientHandlers } from "../../examples/generated/chat";
import { ConformanceProxy, registerConformanceClient } from "../../examples/generated/conformance";
import type { Person } from "../../examples/generated/conformance";
import { DashboardProxy, registerDashboardClient } from "../../examples/generated/dashboard";
import type { Figures } from "../../examples/generated/dashboard";

export async function conformance(connection: HubConnection): Promise<void> {
  const hub = new ConformanceProxy(connection);
  const echoed: string = await hub.echo("hi");
  const sum: number = await hub.add(1, 2);
  const person: Person = await hub.echoPerson({ name: "ada", age: 36, tags: ["math"], address: { city: "London" } });
  const unhoused: Person = await hub.echoPerson({ name: "bob", age: 1, tags: [], address: null });
  await hub.fail("boom");
  await hub.panicNow();
  const id: string = await hub.connectionId();
  const transport: string = await hub.transport();
  await hub.sendToCaller("me");
  await hub.broadcast("all");
  await hub.sendToOthers("others");
  await hub.sendToConnection(id, "you");
  await hub.joinGroup("g");
  await hub.leaveGroup("g");
  await hub.sendToGroup("g", "members");
  const counter: IStreamResult<number> = hub.counter(3, 10);
  counter.subscribe({ next: (n: number) => void n, complete: () => {}, error: () => {} });
  const numbers = new Subject<number>();
  const total: Promise<number> = hub.sum(numbers);
  numbers.next(1);
  numbers.complete();
  const answer: string = await hub.askCaller("why?");
  void [echoed, sum, person, unhoused, transport, await total, answer];

  const unregister: () => void = registerConformanceClient(connection, {
    message(text: string) {
      void text;
    },
    async groupMessage(group: string, text: string) {
      void [group, text];
    },
    ask(question: string) {
      return `${question}!`;
    },
  });
  unregister();
}

export async function chat(): Promise<void> {
  const connection = new HubConnectionBuilder().withUrl("/chat").build();
  const handlers: ChatClientHandlers = {
    receiveMessage(room, user, text) {
      void [room, user, text];
    },
    userJoined(room, user, members: string[]) {
      void [room, user, members];
    },
    userLeft(room, user, members: string[]) {
      void [room, user, members];
    },
    onlineUsers(users: string[]) {
      void users;
    },
  };
  registerChatClient(connection, handlers);
  await connection.start();
  const hub = new ChatProxy(connection);
  const members: string[] = await hub.joinRoom("ada", "lobby");
  await hub.sendMessage("lobby", "hello");
  await hub.leaveRoom("lobby");
  void members;
}

export async function dashboard(connection: HubConnection): Promise<void> {
  registerDashboardClient(connection, {
    figures(figures: Figures) {
      const open: number = figures.webSockets + figures.serverSentEvents + figures.longPolling;
      const rate: number = figures.invocationsPerSecond;
      void [open, rate, figures.at];
    },
  });
  await connection.start();
  const hub = new DashboardProxy(connection);
  const now: Figures = await hub.watch();
  const echoed: string = await hub.echo("hi");
  await hub.unwatch();
  void [now, echoed];
}
