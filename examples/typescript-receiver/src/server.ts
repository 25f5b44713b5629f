// A journey-relay webhook receiver on Node's http module: verify with the official
// standardwebhooks package (every secret of RELAY_WEBHOOK_SECRET, for rotations),
// deduplicate on webhook-id, answer 2xx at once, then handle the event.
//
//   RELAY_WEBHOOK_SECRET  whsec_... (space-separated during a rotation)   required
//   PORT, HOST            where to listen                                 3000, 127.0.0.1
//   EVENTS_FILE           append each verified event as a JSON line       unset: none
//
// GET /events lists what was received (a demo's and the test suite's window into it).

import { appendFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

import { SeenIds } from "./dedup.js";
import { isRelayEvent, type RelayEvent } from "./events.js";

const MAX_BODY = 256 * 1024; // a delivery carries at most 16 KiB of metadata

const secrets = (process.env.RELAY_WEBHOOK_SECRET ?? "").split(/\s+/).filter(Boolean);
if (secrets.length === 0) {
  console.error("RELAY_WEBHOOK_SECRET is not set: give the relay's whsec_... secret(s)");
  process.exit(2);
}
const verifiers = secrets.map((secret) => new Webhook(secret));
const seen = new SeenIds();
const received: { id: string; type: string; task_id: string; status: string }[] = [];
let duplicates = 0;

class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The event, if one of the secrets signed it; Refused (400/401) otherwise. */
function verify(body: string, headers: Record<string, string>): RelayEvent {
  if (!headers["webhook-id"] || !headers["webhook-timestamp"] || !headers["webhook-signature"]) {
    throw new Refused(400, "missing webhook headers");
  }
  for (const verifier of verifiers) {
    try {
      const event: unknown = verifier.verify(body, headers); // also checks the timestamp
      if (!isRelayEvent(event)) throw new Refused(400, "not a relay event");
      return event;
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
    }
  }
  throw new Refused(401, "no signature matches");
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Refused(413, "body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function answer(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

/** Your work goes here. It runs after the 2xx: a slow handler does not make the relay retry. */
async function handle(id: string, event: RelayEvent): Promise<void> {
  const task = event.data;
  received.push({ id, type: event.type, task_id: task.task_id, status: task.status });
  console.log(`${event.type} ${task.task_id} ${task.status} ${task.result.images.length} image(s)`);
  if (process.env.EVENTS_FILE) {
    await appendFile(process.env.EVENTS_FILE, JSON.stringify({ id, ...event }) + "\n");
  }
}

async function onWebhook(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === "string") headers[name] = value;
  }
  const event = verify(await readBody(request), headers);
  const id = headers["webhook-id"];
  if (!seen.claim(id)) {
    duplicates += 1;
    return answer(response, 200, { status: "duplicate" });
  }
  answer(response, 200, { status: "accepted" });
  try {
    await handle(id, event);
  } catch (error) {
    seen.release(id); // a redelivery (POST /v1/tasks/{id}/redeliver) will be handled again
    console.error(`handling ${id} failed:`, error);
  }
}

const server = createServer((request, response) => {
  if (request.method === "GET" && request.url === "/events") {
    return answer(response, 200, { events: received, duplicates });
  }
  if (request.method === "GET" && request.url === "/healthz") {
    return answer(response, 200, { status: "ok" });
  }
  if (request.method !== "POST") return answer(response, 405, { error: "POST webhooks here" });
  onWebhook(request, response).catch((error: unknown) => {
    const status = error instanceof Refused ? error.status : 500;
    if (status === 500) console.error(error);
    const message = error instanceof Error ? error.message : String(error);
    if (!response.headersSent) answer(response, status, { error: message });
  });
});

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? "127.0.0.1";
server.listen(port, host, () => console.log(`listening on http://${host}:${port}`));
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
